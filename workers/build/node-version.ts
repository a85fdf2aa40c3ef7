import fs from 'node:fs';
import path from 'node:path';
import { DetectError } from './plan.ts';

/** The Node.js majors offered; each but the default gets its base image on first use. */
export const NODE_MAJORS = [18, 20, 22, 24, 26] as const;
/** The major of the node base image `npm run setup` makes (scripts/versions.sh NODE_VERSION). */
export const DEFAULT_NODE_MAJOR = 24;

const LTS: Record<string, number> = { hydrogen: 18, iron: 20, jod: 22, krypton: 24 };

/**
 * The Node.js major an app asks for, in Railpack's order: .nvmrc, .node-version, then
 * package.json engines.node. A range takes the default major when it allows it, else the newest
 * offered one it allows; a version we do not offer is refused by name.
 */
export function nodeMajor(dir: string, pkg: { engines?: { node?: string } }): { major: number; why: string } {
  for (const file of ['.nvmrc', '.node-version']) {
    const p = path.join(dir, file);
    if (!fs.existsSync(p)) continue;
    const asked = fs.readFileSync(p, 'utf8').split('\n')[0]?.trim() ?? '';
    if (!asked) continue;
    return { major: pick(asked, file), why: `${file}: ${asked}` };
  }
  const range = pkg.engines?.node?.trim();
  if (range) return { major: pick(range, 'package.json engines.node'), why: `engines.node: ${range}` };
  return { major: DEFAULT_NODE_MAJOR, why: 'the default' };
}

function pick(asked: string, source: string): number {
  const lower = asked.toLowerCase().replace(/^v/, '');
  if (['node', 'latest', 'current', 'stable'].includes(lower)) return Math.max(...NODE_MAJORS);
  if (lower === 'lts/*' || lower === 'lts') return DEFAULT_NODE_MAJOR;
  const lts = lower.match(/^lts\/(\w+)$/)?.[1];
  if (lts) {
    const major = LTS[lts];
    if (major) return major;
    refuse(asked, source);
  }
  const allowed = NODE_MAJORS.filter((m) => allows(lower, m));
  if (!allowed.length) refuse(asked, source);
  return allowed.includes(DEFAULT_NODE_MAJOR as never) ? DEFAULT_NODE_MAJOR : (allowed.at(-1) as number);
}

function refuse(asked: string, source: string): never {
  throw new DetectError(
    `${source} asks for Node.js ${asked}, which is not offered: Node.js ${NODE_MAJORS.join(', ')} are. ` +
      'Change it to one of those, or add a Dockerfile',
  );
}

/** A version as a number: major × 1e6 + minor × 1e3 + patch. */
export const num = (major: number, minor = 0, patch = 0) => major * 1e6 + minor * 1e3 + patch;

/**
 * True when the semver range allows some version of `major` (a small subset of node-semver:
 * `||`, space-separated comparators, ^ ~ >= > <= < =, x wildcards, partial versions and
 * hyphen ranges).
 */
export function allows(range: string, major: number): boolean {
  return allowsWithin(range, num(major), num(major + 1) - 1);
}

/** True when the range allows some version in [from, to] (numbers from `num`). */
export function allowsWithin(range: string, from: number, to: number): boolean {
  return range.split('||').some((part) => {
    let lo = from;
    let hi = to; // inclusive
    const hyphen = part.trim().match(/^(\S+)\s+-\s+(\S+)$/);
    const comparators = hyphen
      ? [`>=${hyphen[1]}`, `<=${hyphen[2]}`]
      : part.trim().split(/\s+/).filter(Boolean);
    for (const c of comparators) {
      const m = c.match(/^(\^|~|>=|<=|>|<|=)?v?(\d+|[x*])(?:\.(\d+|[x*]))?(?:\.(\d+|[x*]))?(?:[-+].*)?$/i);
      if (!m) return false;
      const op = m[1] ?? '=';
      const [a, b, p] = [m[2], m[3], m[4]].map((v) =>
        v === undefined || /[x*]/i.test(v) ? undefined : Number(v),
      );
      if (a === undefined) continue; // "*" or "x": anything
      const floor = num(a, b ?? 0, p ?? 0);
      // The exclusive top of a partial version ("20" → below 21, "20.1" → below 20.2).
      const top = b === undefined ? num(a + 1) : p === undefined ? num(a, b + 1) : num(a, b, p + 1);
      switch (op) {
        case '=':
          lo = Math.max(lo, floor);
          hi = Math.min(hi, top - 1);
          break;
        case '^':
          lo = Math.max(lo, floor);
          hi = Math.min(hi, (a > 0 ? num(a + 1) : b !== undefined && b > 0 ? num(0, b + 1) : top) - 1);
          break;
        case '~':
          lo = Math.max(lo, floor);
          hi = Math.min(hi, (b === undefined ? num(a + 1) : num(a, b + 1)) - 1);
          break;
        case '>=':
          lo = Math.max(lo, floor);
          break;
        case '>':
          lo = Math.max(lo, top);
          break;
        case '<=':
          hi = Math.min(hi, top - 1);
          break;
        case '<':
          hi = Math.min(hi, floor - 1);
          break;
      }
    }
    return lo <= hi;
  });
}
