import fs from 'node:fs';
import path from 'node:path';
import { allowsWithin, num } from './node-version.ts';
import { DetectError } from './plan.ts';

/**
 * The Python versions offered: Debian's own builds, bookworm's 3.11 (the python base image) and
 * trixie's 3.13 (published on first use). No package registry reachable from here carries
 * another CPython build, so other versions are refused by name rather than built.
 */
export const PYTHON_VERSIONS = ['3.11', '3.13'] as const;
export const DEFAULT_PYTHON_VERSION = '3.11';

/**
 * Checks the Python version an app asks for, in Railpack's order: .python-version, runtime.txt,
 * pyproject.toml requires-python (or Poetry's python dependency), uv.lock, Pipfile; returns the
 * version used and why, or refuses a version we do not offer.
 */
export function pythonVersion(dir: string): { version: string; why: string } {
  const read = (f: string) => {
    const p = path.join(dir, f);
    return fs.existsSync(p) ? fs.readFileSync(p, 'utf8') : '';
  };
  const pyproject = read('pyproject.toml');
  const sources: [string, string | undefined][] = [
    ['.python-version', read('.python-version').split('\n')[0]?.trim()],
    [
      'runtime.txt',
      read('runtime.txt')
        .trim()
        .match(/^python-(\d+\.\d+(?:\.\d+)?)/)?.[1],
    ],
    ['pyproject.toml requires-python', pyproject.match(/^requires-python\s*=\s*["']([^"']+)["']/m)?.[1]],
    ['pyproject.toml [tool.poetry.dependencies] python', poetryPython(pyproject)],
    ['uv.lock requires-python', read('uv.lock').match(/^requires-python\s*=\s*"([^"]+)"/m)?.[1]],
    ['Pipfile python_version', read('Pipfile').match(/^python_version\s*=\s*"([^"]+)"/m)?.[1]],
  ];
  for (const [source, asked] of sources) {
    if (!asked) continue;
    const allowed = PYTHON_VERSIONS.filter((v) => allowsVersion(asked, v));
    if (!allowed.length)
      throw new DetectError(
        `${source} asks for Python ${asked}, which is not offered: Python ${PYTHON_VERSIONS.join(' and ')} are. ` +
          'Ask for one of those there, or add a Dockerfile',
      );
    const version = allowed.find((v) => v === DEFAULT_PYTHON_VERSION) ?? (allowed.at(-1) as string);
    return { version, why: `${source}: ${asked}` };
  }
  return { version: DEFAULT_PYTHON_VERSION, why: 'the default' };
}

function poetryPython(pyproject: string): string | undefined {
  const section = pyproject.split(/^\[tool\.poetry\.dependencies\]\s*$/m)[1]?.split(/^\[/m)[0];
  return section?.match(/^python\s*=\s*["']([^"']+)["']/m)?.[1];
}

/** True when a PEP 440 specifier (or a bare version, or Poetry's ^/~) allows Python `version`. */
export function allowsVersion(spec: string, version: string): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  const bare = spec.trim().replace(/^(cpython-|python-?)/i, '');
  if (/^\d+(\.\d+){0,2}$/.test(bare)) return allowsWithin(bare, num(major, minor), num(major, minor, 999));
  const range = bare
    .split(',')
    .map((c) => c.trim())
    .filter((c) => c && !c.startsWith('!='))
    .map((c) => {
      const compatible = c.match(/^~=\s*(\d+)\.(\d+)(\.\d+)?$/);
      if (compatible) {
        const [, a, b, p] = compatible;
        return p ? `~${a}.${b}${p}` : `>=${a}.${b} <${Number(a) + 1}`;
      }
      return c
        .replace(/^===?\s*/, '=')
        .replace(/\.\*$/, '.x')
        .replace(/\s+/g, '');
    })
    .join(' ');
  return allowsWithin(range, num(major, minor), num(major, minor, 999));
}
