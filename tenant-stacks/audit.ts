import { createHash, createHmac } from 'node:crypto';
import type { OutputMap } from '@pulumi/pulumi/automation/index.js';

// Pure audit logic over tenant-stack states: the state reduced to what an audit may show and
// keep (no secret value in it), which release a state serves, and the resource diff between two
// states.

/** What a secret value is printed as. */
export const REDACTED = '[secret]';

/** Pulumi's marker on a secret value in a state: `{ [SECRET_SIG]: SECRET_VALUE_SIG, plaintext | ciphertext }`. */
const SECRET_SIG = '4dabf18193072939515e22adb298388d';
const SECRET_VALUE_SIG = '1b47061264138c4ac30d75fd1eb44270';

/** A property as the audit keeps it: its value, or for a secret only a keyed fingerprint. */
export type AuditLeaf = { value: unknown } | { secret: string };

/** A resource of an `AuditState`: properties flattened to dotted paths (`labels.deploy-mcp.release`). */
export type AuditResource = {
  urn: string;
  type: string;
  /** Set on a replaced resource still awaiting deletion. */
  delete?: true;
  inputs: Record<string, AuditLeaf>;
  outputs: Record<string, AuditLeaf>;
};

/** A stack state reduced to what an audit shows and compares. It holds no secret value. */
export type AuditState = { resources: AuditResource[] };

/** Fingerprints a secret value so two states compare without it: keyed, so it cannot be guessed back. */
export type Fingerprint = (plaintext: string) => string;

/** The fingerprint for `key` (from-config.ts derives it from the master key). */
export function secretFingerprint(key: string): Fingerprint {
  return (plaintext) => `hmac-sha256:${createHmac('sha256', key).update(plaintext).digest('base64url')}`;
}

/**
 * Reduces a deployment as `stack.exportStack()` returns it (secret values in plaintext) to an
 * `AuditState`: a value Pulumi marks secret, and any property named `env`, becomes a fingerprint
 * (env lists, "KEY=value", keep their names); a dynamic provider's serialized code becomes its
 * digest. Nothing else of the deployment (secrets provider, dependencies) is kept.
 */
export function auditState(deployment: unknown, fingerprint: Fingerprint): AuditState {
  const resources = (deployment as { resources?: unknown } | undefined)?.resources;
  return {
    resources: (Array.isArray(resources) ? resources : []).map((r: Record<string, unknown>) => ({
      urn: String(r.urn),
      type: String(r.type),
      ...(r.delete ? { delete: true as const } : {}),
      inputs: leaves(r.inputs, fingerprint),
      outputs: leaves(r.outputs, fingerprint),
    })),
  };
}

/** Stack outputs (`stack.outputs()`) as an audit prints them: secret ones as "[secret]". */
export function auditOutputs(outputs: OutputMap): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(outputs).map(([k, o]) => [k, o.secret ? REDACTED : (o.value as unknown)]),
  );
}

/** The release keys a state holds: the routed one and any other (a candidate). */
export function releasesIn(state: AuditState): { active: string | undefined; others: string[] } {
  const resources = live(state);
  const route = resources.find((r) => nameOf(r.urn) === 'route');
  const upstream = String(plain(route?.outputs.upstream) ?? plain(route?.inputs.upstream) ?? '');
  const port = /:(\d+)\/?$/.exec(upstream)?.[1];
  const keys = resources.flatMap((r) => {
    const key = releaseKeyOf(r);
    return key ? [{ key, hostPort: String(plain(r.outputs.hostPort) ?? '') }] : [];
  });
  const active = port ? keys.find((k) => k.hostPort === port)?.key : undefined;
  return { active, others: keys.filter((k) => k.key !== active).map((k) => k.key) };
}

/**
 * The update that left a release: the first whose state routes to its container with no other
 * release running (its promotion), else the first in which it serves at all.
 */
export function releaseUpdate<T extends { state: AuditState | undefined }>(
  updates: T[],
  key: string,
): T | undefined {
  const serving = updates.filter((u) => u.state && releasesIn(u.state).active === key);
  return serving.find((u) => u.state && releasesIn(u.state).others.length === 0) ?? serving[0];
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
export function diffStates(from: AuditState, to: AuditState): ResourceChange[] {
  const a = views(from);
  const b = views(to);
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

/** A property leaf as it may be shown, and what it is compared by (for a secret, its fingerprint). */
type Leaf = { shown: unknown; compared: string };
type View = { type: string; name: string; inputs: Map<string, Leaf>; outputs: Map<string, Leaf> };

function views(state: AuditState): Map<string, View> {
  const { active } = releasesIn(state);
  const out = new Map<string, View>();
  for (const r of live(state)) {
    const name = nameOf(r.urn);
    const release = releaseKeyOf(r);
    const role = release === undefined ? name : release === active ? '<serving release>' : name;
    const shown = (props: Record<string, AuditLeaf>) =>
      new Map(
        Object.entries(props).map(([path, leaf]): [string, Leaf] =>
          'secret' in leaf
            ? [path, { shown: REDACTED, compared: `secret:${leaf.secret}` }]
            : [path, { shown: leaf.value, compared: JSON.stringify(leaf.value) ?? 'undefined' }],
        ),
      );
    out.set(`${r.type}::${role}`, { type: r.type, name, inputs: shown(r.inputs), outputs: shown(r.outputs) });
  }
  return out;
}

function diffProperties(x: View, y: View): PropertyChange[] {
  const byPath = new Map<string, PropertyChange>();
  for (const side of ['inputs', 'outputs'] as const) {
    for (const path of new Set([...x[side].keys(), ...y[side].keys()])) {
      const p = x[side].get(path);
      const q = y[side].get(path);
      if (p?.compared === q?.compared) continue;
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
 * Flattens properties to dotted paths with secrets reduced to fingerprints: a value Pulumi marks
 * secret, and any property named `env`; env lists ("KEY=value") keep their names. Plain objects
 * and arrays holding a secret are walked; other arrays stay whole.
 */
function leaves(props: unknown, fingerprint: Fingerprint): Record<string, AuditLeaf> {
  const out: Record<string, AuditLeaf> = {};
  const hidden = (value: unknown): AuditLeaf => ({ secret: fingerprint(JSON.stringify(value) ?? '') });
  const walk = (value: unknown, path: string, secret: boolean) => {
    if (isSecret(value)) {
      if (typeof value.plaintext === 'string') walk(JSON.parse(value.plaintext) as unknown, path, true);
      // Still encrypted (not exported with secrets shown): each encryption differs, so any copy
      // compares as changed. Only its fingerprint is kept.
      else out[path] = hidden(value.ciphertext);
    } else if (path === 'env' || path.endsWith('.env')) {
      const entries = envEntries(value);
      if (entries) for (const [k, v] of entries) out[`${path}.${k}`] = hidden(v);
      else out[path] = hidden(value);
    } else if (secret) {
      out[path] = hidden(value);
    } else if (path === '__provider' && typeof value === 'string') {
      // The serialized dynamic provider: its code, summarized.
      out[path] = { value: `[provider code sha256:${sha256(value).slice(0, 12)}]` };
    } else if (isPlainObject(value) && Object.keys(value).length) {
      for (const [k, v] of Object.entries(value)) walk(v, path ? `${path}.${k}` : k, false);
    } else if (Array.isArray(value) && holdsSecret(value)) {
      value.forEach((v, i) => {
        walk(v, `${path}.${i}`, false);
      });
    } else {
      out[path] = { value };
    }
  };
  if (isPlainObject(props)) for (const [k, v] of Object.entries(props)) walk(v, k, false);
  return out;
}

/** "KEY=value" strings or a plain object, as [name, value] pairs; undefined for anything else. */
function envEntries(value: unknown): [string, unknown][] | undefined {
  if (isSecret(value)) return undefined;
  if (Array.isArray(value) && value.every((e) => typeof e === 'string' && e.includes('=')))
    return (value as string[]).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]);
  if (isPlainObject(value)) return Object.entries(value);
  return undefined;
}

function isSecret(value: unknown): value is { ciphertext?: unknown; plaintext?: unknown } {
  return isPlainObject(value) && value[SECRET_SIG] === SECRET_VALUE_SIG;
}

function holdsSecret(value: unknown): boolean {
  if (isSecret(value)) return true;
  if (Array.isArray(value)) return value.some(holdsSecret);
  return isPlainObject(value) && Object.values(value).some(holdsSecret);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function plain(leaf: AuditLeaf | undefined): unknown {
  return leaf && 'value' in leaf ? leaf.value : undefined;
}

function live(state: AuditState): AuditResource[] {
  return state.resources.filter((r) => !r.delete);
}

/** A resource's name: the last URN segment. */
function nameOf(urn: string): string {
  return urn.slice(urn.lastIndexOf('::') + 2);
}

function releaseKeyOf(r: AuditResource): string | undefined {
  return r.type === 'pulumi-nodejs:dynamic:Resource' ? /^release-(.+)$/.exec(nameOf(r.urn))?.[1] : undefined;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
