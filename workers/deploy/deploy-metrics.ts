import { Counter, Gauge, Histogram } from 'prom-client';
import type { Db } from '../../core/db/client.ts';
import type { Logger } from '../../core/log.ts';
import type { Metrics } from '../../core/metrics.ts';

/** Final statuses of a deployment: the outcome label. */
export const DEPLOY_OUTCOMES = ['active', 'failed', 'cancelled', 'superseded'] as const;
/** Phases the deploy activities time (deployment-records.ts addPhase): the phase label. */
export const DEPLOY_PHASES = ['clone', 'build', 'push', 'stackUp', 'health', 'promote'] as const;

/** Rows read per page, and pages per scrape: a backlog is worked off over a few scrapes. */
const PAGE = 500;
const MAX_PAGES = 10;

export type DeployMetricsOptions = {
  /**
   * Deployments that ended less than this long ago are left for the next scrape, so one whose
   * end commits after a later one's is still counted (default 5 s; tests pass 0).
   */
  settleMs?: number;
  /** Only deployments that end after this count (default: now, as a fresh counter starts at 0). */
  since?: Date;
};

/**
 * Deploy figures, fed from the deployment records when scraped (so any process with the
 * database serves them, whichever process ran the deploy): deployments by outcome and the time
 * of each phase of those that ended since the last scrape, and the builds running and
 * deployments queued right now. Counts only: no user, service or commit in any label.
 */
export function registerDeployMetrics(
  metrics: Metrics,
  db: Db,
  log: Logger,
  options: DeployMetricsOptions = {},
) {
  const registers = [metrics.registry];
  const settleMs = options.settleMs ?? 5_000;
  let cursor = { at: options.since ?? new Date(), id: '' };
  let syncing: Promise<void> | undefined;

  const finished = new Counter({
    name: 'deploy_mcp_deployments_total',
    help: 'Deployments that ended, by outcome (active, failed, cancelled, superseded)',
    labelNames: ['outcome'],
    registers,
    // Brought up to date from the records before it is read (and so is the histogram).
    collect: sync,
  });
  const phaseSeconds = new Histogram({
    name: 'deploy_mcp_deploy_phase_duration_seconds',
    help: 'Time of each deploy phase (clone, build, push, stackUp, health, promote) of deployments that ended',
    labelNames: ['phase'],
    buckets: [0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300, 900],
    registers,
    collect: sync,
  });
  for (const outcome of DEPLOY_OUTCOMES) finished.inc({ outcome }, 0);

  /** Reads deployments that ended after the cursor, in (finishedAt, id) order. */
  async function feed() {
    const until = new Date(Date.now() - settleMs);
    for (let page = 0; page < MAX_PAGES; page++) {
      const rows = await db.deployment.findMany({
        where: {
          status: { in: [...DEPLOY_OUTCOMES] },
          finishedAt: { lte: until },
          OR: [{ finishedAt: { gt: cursor.at } }, { finishedAt: cursor.at, id: { gt: cursor.id } }],
        },
        select: { id: true, status: true, finishedAt: true, phaseTimings: true },
        orderBy: [{ finishedAt: 'asc' }, { id: 'asc' }],
        take: PAGE,
      });
      for (const row of rows) {
        finished.inc({ outcome: row.status });
        for (const [phase, ms] of phasesOf(row.phaseTimings)) phaseSeconds.observe({ phase }, ms / 1000);
        if (row.finishedAt) cursor = { at: row.finishedAt, id: row.id };
      }
      if (rows.length < PAGE) return;
    }
  }

  /** One feed at a time, shared by the metrics scraped together. */
  function sync(): Promise<void> {
    syncing ??= feed()
      .catch((err: unknown) => log.warn({ err }, 'reading deployments for metrics failed'))
      .finally(() => {
        syncing = undefined;
      });
    return syncing;
  }

  new Gauge({
    name: 'deploy_mcp_builds_running',
    help: 'Deployments building right now (all users)',
    registers,
    async collect() {
      await sync();
      this.set(await countStatus(db, 'building', log));
    },
  });
  new Gauge({
    name: 'deploy_mcp_deployments_queued',
    help: 'Deployments waiting for a build slot right now (all users)',
    registers,
    async collect() {
      await sync();
      this.set(await countStatus(db, 'queued', log));
    },
  });
}

async function countStatus(db: Db, status: string, log: Logger): Promise<number> {
  try {
    return await db.deployment.count({ where: { status } });
  } catch (err) {
    log.warn({ err, status }, 'counting deployments for metrics failed');
    return Number.NaN;
  }
}

/** The known phases of a deployment's timings (unknown names and bad values are skipped). */
function phasesOf(json: string | null): [string, number][] {
  if (!json) return [];
  try {
    const timings = JSON.parse(json) as Record<string, unknown>;
    return DEPLOY_PHASES.flatMap((p) => {
      const ms = timings[p];
      return typeof ms === 'number' && Number.isFinite(ms) && ms >= 0 ? [[p, ms] as [string, number]] : [];
    });
  } catch {
    return [];
  }
}
