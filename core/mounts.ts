import fs from 'node:fs';
import path from 'node:path';
import { run } from './cluster/exec.ts';

/** Mount points at or below `dir` (from /proc/self/mountinfo), deepest first. */
export function mountsUnder(dir: string): string[] {
  const root = path.resolve(dir);
  const points = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => unescapeOctal(line.split(' ')[4] ?? ''))
    .filter((m) => m === root || m.startsWith(`${root}/`));
  // A path mounted twice (the kubelet bind-mounts its root dir onto itself) is listed twice.
  return points.sort((a, b) => b.split('/').length - a.split('/').length || b.length - a.length);
}

/**
 * Unmounts everything at or below `dir`: pod volumes (tmpfs, bind mounts), the kubelet's
 * bind mount of its root dir, container root filesystems, sandbox shm and network namespaces.
 * A mount that is still busy is detached lazily. Returns what was unmounted.
 */
export async function unmountUnder(dir: string): Promise<string[]> {
  const done: string[] = [];
  for (let round = 0; round < 5; round++) {
    const points = mountsUnder(dir);
    if (!points.length) break;
    for (const point of points) {
      try {
        await run('umount', [point]);
      } catch {
        await run('umount', ['-l', point]).catch(() => undefined);
      }
      done.push(point);
    }
  }
  return done;
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
function unescapeOctal(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}
