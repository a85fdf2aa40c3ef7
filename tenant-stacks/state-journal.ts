import type { Db } from '../core/db/client.ts';
import { type AuditState, auditState, type Fingerprint } from './audit.ts';
import type { KeptUpdate, StackJournal, StackUpdateRecord } from './runner.ts';

/**
 * The stack journal in the product database (`StackUpdate` rows): every update the runner ran
 * and the state it left, reduced by `auditState` (no secret value, only keyed fingerprints).
 * Kept after the stack is removed, like the service's release rows.
 */
export class DbStackJournal implements StackJournal {
  private readonly db: Db;
  private readonly fingerprint: Fingerprint;

  constructor(db: Db, fingerprint: Fingerprint) {
    this.db = db;
    this.fingerprint = fingerprint;
  }

  async record(stackName: string, update: StackUpdateRecord, deployment: unknown): Promise<void> {
    await this.db.stackUpdate.create({
      data: {
        stackName,
        version: update.version,
        kind: update.kind,
        result: update.result,
        startTime: update.startTime,
        endTime: update.endTime ?? null,
        resourceChanges: JSON.stringify(update.resourceChanges),
        state: deployment === undefined ? null : JSON.stringify(this.redact(deployment)),
      },
    });
  }

  async entries(stackName: string): Promise<KeptUpdate[]> {
    const rows = await this.db.stackUpdate.findMany({
      where: { stackName },
      orderBy: [{ startTime: 'asc' }, { recordedAt: 'asc' }],
    });
    return rows.map((r) => ({
      update: {
        version: r.version,
        kind: r.kind as StackUpdateRecord['kind'],
        result: r.result as StackUpdateRecord['result'],
        startTime: r.startTime,
        endTime: r.endTime ?? undefined,
        resourceChanges: JSON.parse(r.resourceChanges) as Record<string, number>,
      },
      state: r.state === null ? undefined : (JSON.parse(r.state) as AuditState),
    }));
  }

  /** A live state (`exportStack()`) reduced as the kept ones are, so it compares with them. */
  redact(deployment: unknown): AuditState {
    return auditState(deployment, this.fingerprint);
  }
}
