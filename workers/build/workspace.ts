import fs from 'node:fs';
import path from 'node:path';
import { DetectError } from './plan.ts';

/** Entries (files, folders, links) a checkout may hold; beyond it the build is refused. */
export const MAX_WORKSPACE_ENTRIES = 200_000;

/**
 * Makes sure nothing in a checkout leads outside it before any of our code reads it: every
 * symbolic link must resolve inside `root` (or, when dangling, point inside it). Links are
 * otherwise left alone: BuildKit sends them as links and resolves them inside the build.
 * A link that escapes is refused with the path and target in the message, so a repo cannot
 * make the worker read (and echo back) host files such as the master key or /proc/self/environ.
 */
export function assertContained(root: string): void {
  const realRoot = fs.realpathSync(root);
  let entries = 0;
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (++entries > MAX_WORKSPACE_ENTRIES)
        throw new DetectError(`the repo has more than ${MAX_WORKSPACE_ENTRIES} files and folders`);
      const p = path.join(dir, e.name);
      if (e.isSymbolicLink()) checkLink(realRoot, p);
      else if (e.isDirectory()) walk(p);
    }
  };
  walk(realRoot);
}

function checkLink(root: string, link: string) {
  const target = fs.readlinkSync(link);
  const rel = path.relative(root, link);
  if (!inside(root, resolveLink(link)))
    throw new DetectError(
      `the repo's symbolic link ${rel} points outside the repository (to ${target}); ` +
        'builds only follow links to files inside the repo: replace it with the file itself',
    );
}

/**
 * Where the kernel would take `link`, also when its target does not exist (where a write
 * through it would create a file): the components that exist are resolved as the kernel does,
 * links within links included; the rest is appended as written.
 */
function resolveLink(link: string, depth = 0): string {
  try {
    return fs.realpathSync(link);
  } catch {
    // dangling or a loop: walk it below
  }
  if (depth > 40) return '/'; // a loop: treated as leading outside
  let cur = fs.realpathSync(path.dirname(link));
  const target = fs.readlinkSync(link);
  if (path.isAbsolute(target)) cur = '/';
  const parts = target.split('/').filter((c) => c && c !== '.');
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] as string;
    if (part === '..') {
      cur = path.dirname(cur);
      continue;
    }
    const next = path.join(cur, part);
    let stat: fs.Stats;
    try {
      stat = fs.lstatSync(next);
    } catch {
      return path.resolve(next, ...parts.slice(i + 1)); // nothing there: the rest as written
    }
    cur = stat.isSymbolicLink() ? resolveLink(next, depth + 1) : next;
  }
  return cur;
}

function inside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (!rel.startsWith(`..${path.sep}`) && rel !== '..' && !path.isAbsolute(rel));
}

/**
 * Writes a file the worker adds to a checkout (e.g. a default .dockerignore) only if nothing is
 * there yet, never through a link: O_EXCL | O_NOFOLLOW fail on any existing entry, dangling
 * links included. Returns false when the repo already has one.
 */
export function addFileIfMissing(file: string, content: string): boolean {
  let fd: number;
  try {
    fd = fs.openSync(
      file,
      fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW,
      0o644,
    );
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    fs.writeFileSync(fd, content);
  } finally {
    fs.closeSync(fd);
  }
  return true;
}
