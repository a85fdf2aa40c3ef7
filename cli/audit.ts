import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Config } from '../core/config.ts';
import { type Db, openDatabase } from '../core/db/client.ts';
import { DomainError, invalidInput, notFound } from '../core/errors.ts';
import { resolveProject } from '../core/projects.ts';
import { loadMasterKey, SecretBox } from '../core/secrets.ts';
import { getUserByEmail } from '../core/users.ts';
import {
  type AuditState,
  auditOutputs,
  diffStates,
  REDACTED,
  type ResourceChange,
  releasesIn,
  releaseUpdate,
} from '../tenant-stacks/audit.ts';
import { stackJournal, tenantStackRunner } from '../tenant-stacks/from-config.ts';
import {
  type KeptUpdate,
  matchKept,
  type StackReading,
  type StackUpdateRecord,
} from '../tenant-stacks/runner.ts';
import { auditResource } from './audit-resource.ts';

export const AUDIT_USAGE =
  'audit <service> --user <email> [--project <name>] [--from <v>] [--to <v>] [--json] | ' +
  'audit <resource> --resource --user <email> [--project <name>] [--json]';

/** A release a stack state runs: its version, or its key alone when no release row has it. */
type ReleaseRef = { version: number | null; key: string };

/** What `deploy-mcp audit` reports (`--json` prints exactly this). */
export type AuditReport = {
  service: {
    id: string;
    name: string;
    project: string;
    owner: string;
    stackName: string;
    status: string;
    url: string | null;
    createdAt: string;
    deletedAt: string | null;
  };
  /** Newest first. */
  releases: {
    version: number;
    current: boolean;
    commit: string | null;
    imageRef: string;
    createdAt: string;
    deploymentId: string;
  }[];
  stack: {
    /** live: in the backend; removed: only deploy-mcp's copies are left; absent: neither. */
    state: 'live' | 'removed' | 'absent';
    note?: string;
    /** The live stack's outputs (`stack.outputs()`), secret ones as "[secret]". */
    outputs?: Record<string, unknown>;
  };
  /** The stack's updates, newest first, and the releases each left running. */
  history: {
    version: number;
    kind: string;
    result: string;
    startTime: string;
    endTime: string | null;
    resourceChanges: Record<string, number>;
    /** False when the state the update left was not kept (serving and candidates are unknown). */
    stateKept: boolean;
    serving: ReleaseRef | null;
    candidates: ReleaseRef[];
  }[];
  diff: {
    from: number | null;
    to: number | null;
    /** "stack state": the states the releases' updates left; "release rows": the database only. */
    basis: 'stack state' | 'release rows' | null;
    /** The stack updates whose states are compared (basis "stack state"). */
    updates?: { from: number; to: number };
    note?: string;
    resources: ResourceChange[];
  };
};

/**
 * `deploy-mcp audit`: a service's releases, its stack's update history and the resource diff
 * between two releases. Read-only (the database, and the Pulumi backend through the Automation
 * API's read commands in a temporary workspace), so it is safe while the server runs. Deleted
 * services are included: their updates and states are the copies the stack runner kept.
 */
export async function audit(config: Config, args: string[]): Promise<void> {
  if (args.includes('--resource'))
    return auditResource(
      config,
      args.filter((a) => a !== '--resource'),
    );
  const { values, positionals } = parseArgs({
    args,
    options: {
      user: { type: 'string' },
      project: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    allowPositionals: true,
  });
  const [name] = positionals;
  if (positionals.length !== 1 || !name || !values.user)
    throw invalidInput(`usage: deploy-mcp ${AUDIT_USAGE}`);
  const from = parseVersion(values.from, '--from');
  const to = parseVersion(values.to, '--to');

  const db = await openDatabase(config.databaseUrl, { poolSize: 1 });
  try {
    const report = await buildReport(config, db.prisma, {
      user: values.user,
      project: values.project,
      name,
      from,
      to,
    });
    console.log(values.json ? JSON.stringify(report, null, 2) : renderText(report));
  } finally {
    await db.close();
  }
}

async function buildReport(
  config: Config,
  db: Db,
  q: { user: string; project: string | undefined; name: string; from?: number; to?: number },
): Promise<AuditReport> {
  const user = await getUserByEmail(db, q.user);
  const project = await resolveProject(db, user.id, q.project);
  const service = await findService(db, user.id, project.id, project.name, q.name);
  const releases = await db.release.findMany({
    where: { serviceId: service.id },
    orderBy: { version: 'desc' },
    include: { deployment: { select: { commitSha: true } } },
  });
  const keyOf = (r: { deploymentId: string }) => r.deploymentId.slice(-12);
  const ref = (key: string): ReleaseRef => ({
    version: releases.find((r) => keyOf(r) === key)?.version ?? null,
    key,
  });

  const secrets = openSecretBox(config);
  const journal = stackJournal(db, secrets);
  const [reading, kept] = await Promise.all([
    tenantStackRunner(config, secrets).read(service.stackName),
    journal.entries(service.stackName),
  ]);
  const { stack, updates } = stackUpdates(reading, kept, (d) => journal.redact(d));
  const history = updates
    .slice()
    .reverse()
    .map((u) => {
      const held = u.state ? releasesIn(u.state) : undefined;
      return {
        version: u.number,
        kind: u.update.kind,
        result: u.update.result,
        startTime: u.update.startTime.toISOString(),
        endTime: u.update.endTime?.toISOString() ?? null,
        resourceChanges: u.update.resourceChanges,
        stateKept: u.state !== undefined,
        serving: held?.active ? ref(held.active) : null,
        candidates: held?.others.map(ref) ?? [],
      };
    });

  const current = releases.find((r) => r.id === service.currentReleaseId) ?? releases[0];
  const pick = (v: number) => {
    const r = releases.find((x) => x.version === v);
    if (!r)
      throw notFound(
        `release v${v} of ${service.name}`,
        releases.length
          ? `Its releases: ${releases.map((x) => `v${x.version}`).join(', ')}.`
          : 'It has no releases.',
      );
    return r;
  };
  const toRelease = q.to !== undefined ? pick(q.to) : current;
  const fromRelease =
    q.from !== undefined ? pick(q.from) : releases.find((r) => toRelease && r.version < toRelease.version);

  let diff: AuditReport['diff'];
  if (!toRelease) diff = { from: null, to: null, basis: null, note: 'no releases yet', resources: [] };
  else if (!fromRelease)
    diff = {
      from: null,
      to: toRelease.version,
      basis: null,
      note: `v${toRelease.version} is the first release: there is nothing before it to compare`,
      resources: [],
    };
  else {
    const a = releaseUpdate(updates, keyOf(fromRelease));
    const b = releaseUpdate(updates, keyOf(toRelease));
    if (a?.state && b?.state) {
      diff = {
        from: fromRelease.version,
        to: toRelease.version,
        basis: 'stack state',
        updates: { from: a.number, to: b.number },
        resources: diffStates(a.state, b.state),
      };
    } else {
      const missing = [a?.state ? [] : [fromRelease.version], b?.state ? [] : [toRelease.version]].flat();
      diff = {
        from: fromRelease.version,
        to: toRelease.version,
        basis: 'release rows',
        note: `no kept stack state in which ${missing.map((v) => `v${v}`).join(' or ')} serves; compared the release rows instead`,
        resources: diffReleaseRows(fromRelease, toRelease),
      };
    }
  }

  const unkept = updates.filter((u) => !u.state).map((u) => `#${u.number}`);
  const notes = [
    stack === 'removed'
      ? 'the stack was removed with the service, and its history with it: its updates and the states they left are the copies deploy-mcp kept'
      : stack === 'absent'
        ? 'the backend holds no state for this stack and no update of it was kept (never deployed?)'
        : undefined,
    unkept.length
      ? `the state left by update${unkept.length > 1 ? 's' : ''} ${unkept.length > 8 ? `${unkept.slice(0, 8).join(', ')} … (${unkept.length})` : unkept.join(', ')} was not kept: the backend keeps only the current state, and deploy-mcp keeps a copy of what its own updates leave`
      : undefined,
  ].filter((n) => n !== undefined);
  return {
    service: {
      id: service.id,
      name: service.name,
      project: project.name,
      owner: user.email,
      stackName: service.stackName,
      status: service.status,
      url: service.url,
      createdAt: service.createdAt.toISOString(),
      deletedAt: service.deletedAt?.toISOString() ?? null,
    },
    releases: releases.map((r) => ({
      version: r.version,
      current: r.id === service.currentReleaseId,
      commit: r.deployment.commitSha,
      imageRef: r.imageRef,
      createdAt: r.createdAt.toISOString(),
      deploymentId: r.deploymentId,
    })),
    stack: {
      state: stack,
      ...(notes.length ? { note: notes.join('; ') } : {}),
      ...(reading.exists ? { outputs: auditOutputs(reading.outputs) } : {}),
    },
    history,
    diff,
  };
}

/** A stack update as the audit numbers it (1 = oldest), with the state it left when known. */
type AuditedUpdate = { number: number; update: StackUpdateRecord; state: AuditState | undefined };

/**
 * The stack's updates: a live stack's are the backend's records (`stack.history()`), each with
 * the state the journal kept of it, the newest at least with the current state
 * (`exportStack()`); a removed stack's are the journal's copies alone.
 */
export function stackUpdates(
  reading: StackReading,
  kept: KeptUpdate[],
  redact: (deployment: unknown) => AuditState,
): { stack: 'live' | 'removed' | 'absent'; updates: AuditedUpdate[] } {
  const number = (u: StackUpdateRecord, i: number) => (u.version > 0 ? u.version : i + 1);
  if (!reading.exists) {
    return {
      stack: kept.length ? 'removed' : 'absent',
      updates: kept.map((k, i) => ({ number: number(k.update, i), update: k.update, state: k.state })),
    };
  }
  const matched = matchKept(reading.history, kept);
  const newest = reading.history.length - 1;
  return {
    stack: 'live',
    updates: reading.history.map((update, i) => ({
      number: number(update, i),
      update,
      state: matched[i]?.state ?? (i === newest ? redact(reading.deployment) : undefined),
    })),
  };
}

/** The live service with that name, else the most recently deleted one. */
async function findService(db: Db, userId: string, projectId: string, projectName: string, name: string) {
  const service =
    (await db.service.findFirst({ where: { userId, projectId, name, deletedAt: null } })) ??
    (await db.service.findFirst({
      where: { userId, projectId, name },
      orderBy: { deletedAt: 'desc' },
    }));
  if (service) return service;
  const names = await db.service.findMany({
    where: { userId, projectId },
    select: { name: true, deletedAt: true },
    orderBy: { name: 'asc' },
  });
  const list = [...new Set(names.map((s) => (s.deletedAt ? `${s.name} (deleted)` : s.name)))];
  throw notFound(
    `service "${name}" in project "${projectName}"`,
    `Its services: ${list.length ? list.join(', ') : '(none)'}.`,
  );
}

/** Without state for a release, what the release rows say: image, config digest and commit. */
function diffReleaseRows(
  a: { version: number; imageRef: string; configDigest: string; deployment: { commitSha: string | null } },
  b: typeof a,
): ResourceChange[] {
  const props = (['imageRef', 'configDigest', 'commit'] as const).flatMap((p) => {
    const x = p === 'commit' ? a.deployment.commitSha : a[p];
    const y = p === 'commit' ? b.deployment.commitSha : b[p];
    return x === y ? [] : [{ path: p, in: [] as ('inputs' | 'outputs')[], from: x, to: y }];
  });
  return [
    { change: 'changed', type: 'release', from: `v${a.version}`, to: `v${b.version}`, properties: props },
  ];
}

function parseVersion(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const m = /^v?(\d+)$/.exec(value);
  if (!m) throw invalidInput(`${flag} takes a release version such as 3 or v3, not "${value}"`);
  return Number(m[1]);
}

/** The master key, without creating one (an audit writes nothing). */
export function openSecretBox(config: Config): SecretBox {
  const file = path.join(config.dataDir, 'secret.key');
  if (!config.secretKey && !fs.existsSync(file)) {
    throw new DomainError(
      'not_available',
      `no master key: ${file} does not exist and DEPLOY_MCP_SECRET_KEY is unset. Is DEPLOY_MCP_DATA_DIR the server's?`,
    );
  }
  return new SecretBox(loadMasterKey(config.dataDir, config.secretKey));
}

function renderText(r: AuditReport): string {
  const s = r.service;
  const lines = [
    `service   ${s.name}  (project ${s.project}, owner ${s.owner})`,
    `stack     ${s.stackName}  (${r.stack.state})`,
    `status    ${s.status}${s.url ? `  ${s.url}` : ''}`,
  ];
  if (s.deletedAt) lines.push(`deleted   ${time(s.deletedAt)}: the service was deleted; its history is kept`);
  if (r.stack.note) lines.push(`note      ${r.stack.note}`);
  if (r.stack.outputs) {
    const outputs = Object.entries(r.stack.outputs).map(
      ([k, v]) => `${k}=${v === REDACTED ? REDACTED : JSON.stringify(v)}`,
    );
    lines.push(`outputs   ${outputs.join(', ') || '(none)'}`);
  }

  lines.push('', `releases (${r.releases.length}, newest first)`);
  for (const x of r.releases) {
    lines.push(
      `  v${x.version}  ${x.current ? 'current' : '       '}  ${time(x.createdAt)}  commit ${x.commit?.slice(0, 12) ?? '-'}  image ${x.imageRef}  deployment ${x.deploymentId}`,
    );
  }
  if (!r.releases.length) lines.push('  (none)');

  lines.push('', `stack updates (${r.history.length}, newest first)`);
  for (const u of r.history) {
    const took = u.endTime ? `${Math.round((Date.parse(u.endTime) - Date.parse(u.startTime)) / 1000)}s` : '-';
    const changes = Object.entries(u.resourceChanges)
      .map(([op, n]) => `${op} ${n}`)
      .join(', ');
    const held = !u.stateKept
      ? 'state not kept'
      : [
          u.serving ? `serving ${refText(u.serving)}` : 'serving nothing',
          ...u.candidates.map((c) => `candidate ${refText(c)}`),
        ].join(', ');
    lines.push(
      `  #${u.version}  ${u.kind.padEnd(7)}  ${u.result.padEnd(9)}  ${time(u.startTime)}  ${took.padStart(4)}  ${changes || 'no changes'}  → ${held}`,
    );
  }
  if (!r.history.length) lines.push('  (none kept)');

  const d = r.diff;
  lines.push('');
  if (d.from === null || d.to === null) lines.push(`resource diff: ${d.note}`);
  else {
    const basis = !d.updates
      ? `release rows: ${d.note}`
      : `the stack states after updates #${d.updates.from} and #${d.updates.to}`;
    lines.push(`resource diff v${d.from} → v${d.to} (${basis})`);
    if (!d.resources.length) lines.push('  no differences');
    for (const c of d.resources) {
      const mark = { added: '+', removed: '-', changed: '~' }[c.change];
      const names = c.change === 'changed' && c.from !== c.to ? `${c.from} → ${c.to}` : (c.to ?? c.from);
      lines.push(`  ${mark} ${names}  ${c.type}`);
      const width = Math.min(30, Math.max(0, ...c.properties.map((p) => p.path.length)));
      for (const p of c.properties) {
        const where = p.in.length === 1 ? `  (${p.in[0]} only)` : '';
        const value =
          c.change === 'changed'
            ? `${show(p, 'from')} → ${show(p, 'to')}${p.secretChanged ? ' (value changed)' : ''}`
            : show(p, c.change === 'added' ? 'to' : 'from');
        lines.push(`      ${p.path.padEnd(width)}  ${value}${where}`);
      }
    }
  }
  return lines.join('\n');
}

function show(p: { from?: unknown; to?: unknown }, side: 'from' | 'to'): string {
  if (!(side in p)) return '(absent)';
  const v = p[side];
  return v === REDACTED ? REDACTED : (JSON.stringify(v) ?? 'undefined');
}

function refText(x: ReleaseRef): string {
  return x.version === null ? `release-${x.key} (no release row)` : `v${x.version}`;
}

function time(iso: string): string {
  return iso.replace(/\.\d{3}Z$/, 'Z');
}
