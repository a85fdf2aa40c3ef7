import { createHash } from 'node:crypto';
import type { StackCheckpoint, StackState, StateResource } from './runner.ts';

// Pure audit logic over checkpointed tenant-stack states: which release a state serves, and
// the resource diff between two states with every secret redacted before anything is compared.

/** What a secret value is printed as. */
export const REDACTED = '[secret]';

/** Pulumi's marker on a secret value in a state: `{ [SECRET_SIG]: SECRET_VALUE_SIG, ciphertext }`. */
const SECRET_SIG = '4dabf18193072939515e22adb298388d';
const SECRET_VALUE_SIG = '1b47061264138c4ac30d75fd1eb44270';

/** Opens a secret's ciphertext (the runner's `secretOpener`). */
export type OpenSecret = (ciphertext: string) => string;

/** The release keys a state holds: the routed one and any other (a candidate). */
export function releasesIn(state: StackState): { active: string | undefined; others: string[] } {
  const resources = live(state);
  const route = resources.find((r) => nameOf(r.urn) === 'route');
  const upstream = String(route?.outputs?.upstream ?? route?.inputs?.upstream ?? '');
  const port = /:(\d+)\/?$/.exec(upstream)?.[1];
  const keys = resources.flatMap((r) => {
    const key = releaseKeyOf(r);
    return key ? [{ key, hostPort: String(r.outputs?.hostPort ?? '') }] : [];
  });
  const active = port ? keys.find((k) => k.hostPort === port)?.key : undefined;
  return { active, others: keys.filter((k) => k.key !== active).map((k) => k.key) };
}

/**
 * The checkpoint a release left: the first in which the route points at its container and no
 * other release runs (its promotion), else the first in which it serves at all.
 */
export function releaseCheckpoint(checkpoints: StackCheckpoint[], key: string): StackCheckpoint | undefined {
  const serving = checkpoints.filter((c) => c.state && releasesIn(c.state).active === key);
  return serving.find((c) => c.state && releasesIn(c.state).others.length === 0) ?? serving[0];
}

/** One property that differs; `from`/`to` absent means the property is absent on that side. */
export type PropertyChange = {
  path: string;
  /** Where it differs: the resource's inputs, its outputs, or both. */
  in: ('inputs' | 'outputs')[];
  from?: unknown;
  to?: unknown;
  /** Set when both sides are redacted: the value changed, and what it is stays hidden. */
  secretChanged?: true;
};

export type ResourceChange = {
  change: 'added' | 'removed' | 'changed';
  type: string;
  /** Resource name on each side (a release's container is named after its release). */
  from?: string;
  to?: string;
  properties: PropertyChange[];
};

/**
 * The resources that differ between two states. A release's container is matched with the
 * other state's container in the same role (serving, or not), since each release names its own.
 */
export function diffStates(
  from: StackState,
  to: StackState,
  opener: (state: StackState) => OpenSecret,
): ResourceChange[] {
  // Secrets are opened only when met, and only to redact and compare them.
  const a = views(from, (ct) => opener(from)(ct));
  const b = views(to, (ct) => opener(to)(ct));
  const changes: ResourceChange[] = [];
  for (const [key, x] of a) {
    const y = b.get(key);
    if (!y) {
      changes.push({ change: 'removed', type: x.type, from: x.name, properties: sideOnly(x, 'from') });
      continue;
    }
    const properties = diffProperties(x, y);
    if (properties.length || x.name !== y.name)
      changes.push({ change: 'changed', type: x.type, from: x.name, to: y.name, properties });
  }
  for (const [key, y] of b) {
    if (!a.has(key))
      changes.push({ change: 'added', type: y.type, to: y.name, properties: sideOnly(y, 'to') });
  }
  const order = { removed: 0, changed: 1, added: 2 };
  return changes.sort(
    (p, q) => order[p.change] - order[q.change] || (p.to ?? p.from ?? '').localeCompare(q.to ?? q.from ?? ''),
  );
}

/** A property leaf as it may be shown, and a fingerprint to compare by (never shown). */
type Leaf = { shown: unknown; fingerprint: string };
type View = { type: string; name: string; inputs: Map<string, Leaf>; outputs: Map<string, Leaf> };

function views(state: StackState, open: OpenSecret): Map<string, View> {
  const { active } = releasesIn(state);
  const out = new Map<string, View>();
  for (const r of live(state)) {
    const name = nameOf(r.urn);
    const release = releaseKeyOf(r);
    const role = release === undefined ? name : release === active ? '<serving release>' : name;
    out.set(`${r.type}::${role}`, {
      type: r.type,
      name,
      inputs: leaves(r.inputs ?? {}, open),
      outputs: leaves(r.outputs ?? {}, open),
    });
  }
  return out;
}

function diffProperties(x: View, y: View): PropertyChange[] {
  const byPath = new Map<string, PropertyChange>();
  for (const side of ['inputs', 'outputs'] as const) {
    for (const path of new Set([...x[side].keys(), ...y[side].keys()])) {
      const p = x[side].get(path);
      const q = y[side].get(path);
      if (p?.fingerprint === q?.fingerprint) continue;
      const change: PropertyChange = { path, in: [side] };
      if (p) change.from = p.shown;
      if (q) change.to = q.shown;
      if (p?.shown === REDACTED && q?.shown === REDACTED) change.secretChanged = true;
      const same = byPath.get(path);
      // An output that echoes its input's change is one change, in both.
      if (same && JSON.stringify([same.from, same.to]) === JSON.stringify([change.from, change.to]))
        same.in.push(side);
      else byPath.set(same ? `${path}\0${side}` : path, change);
    }
  }
  return [...byPath.values()].sort((p, q) => p.path.localeCompare(q.path));
}

function sideOnly(v: View, side: 'from' | 'to'): PropertyChange[] {
  return diffProperties(
    side === 'from' ? v : { ...v, inputs: new Map(), outputs: new Map() },
    side === 'to' ? v : { ...v, inputs: new Map(), outputs: new Map() },
  );
}

/**
 * Flattens properties to dotted paths with secrets redacted: a value Pulumi marks secret, and
 * any property named `env`, shows as "[secret]"; env lists ("KEY=value") show their names.
 */
function leaves(props: Record<string, unknown>, open: OpenSecret): Map<string, Leaf> {
  const out = new Map<string, Leaf>();
  const walk = (value: unknown, path: string, secret: boolean) => {
    if (isSecret(value)) {
      const plaintext =
        typeof value.plaintext === 'string' ? value.plaintext : open(String(value.ciphertext));
      walk(JSON.parse(plaintext) as unknown, path, true);
    } else if (path === 'env' || path.endsWith('.env')) {
      const entries = envEntries(value);
      if (entries) for (const [k, v] of entries) out.set(`${path}.${k}`, hidden(v));
      else out.set(path, hidden(value));
    } else if (secret) {
      out.set(path, hidden(value));
    } else if (path === '__provider' && typeof value === 'string') {
      // The serialized dynamic provider: its code, summarized.
      out.set(path, {
        shown: `[provider code sha256:${sha256(value).slice(0, 12)}]`,
        fingerprint: sha256(value),
      });
    } else if (value && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length) {
      for (const [k, v] of Object.entries(value)) walk(v, path ? `${path}.${k}` : k, false);
    } else {
      out.set(path, { shown: value, fingerprint: JSON.stringify(value) ?? 'undefined' });
    }
  };
  for (const [k, v] of Object.entries(props)) walk(v, k, false);
  return out;
}

function hidden(value: unknown): Leaf {
  return { shown: REDACTED, fingerprint: `secret:${sha256(JSON.stringify(value) ?? '')}` };
}

/** "KEY=value" strings or a plain object, as [name, value] pairs; undefined for anything else. */
function envEntries(value: unknown): [string, unknown][] | undefined {
  if (isSecret(value)) return undefined;
  if (Array.isArray(value) && value.every((e) => typeof e === 'string' && e.includes('=')))
    return (value as string[]).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]);
  if (value && typeof value === 'object' && !Array.isArray(value)) return Object.entries(value);
  return undefined;
}

function isSecret(value: unknown): value is { ciphertext?: unknown; plaintext?: unknown } {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as Record<string, unknown>)[SECRET_SIG] === SECRET_VALUE_SIG
  );
}

function live(state: StackState): StateResource[] {
  return (state.resources ?? []).filter((r) => !r.delete);
}

/** A resource's name: the last URN segment. */
function nameOf(urn: string): string {
  return urn.slice(urn.lastIndexOf('::') + 2);
}

function releaseKeyOf(r: StateResource): string | undefined {
  return r.type === 'pulumi-nodejs:dynamic:Resource' ? /^release-(.+)$/.exec(nameOf(r.urn))?.[1] : undefined;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
