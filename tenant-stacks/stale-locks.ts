import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * Pulumi's file backend locks a stack for each update and removes the lock when the update
 * ends. A `pulumi` process killed in the middle (kill -9 of the server, the OOM killer) leaves
 * the lock behind, and every later update of that stack fails with "the stack is currently
 * locked". These helpers tell such a lock from a live one, using what the CLI reports about it.
 */

/** One lock as the CLI's "currently locked" error names it: "created by root@vm (pid 123)". */
type LockHolder = { host: string; pid: number };

function lockHolders(message: string): LockHolder[] {
  return [...message.matchAll(/created by [^@\s]+@(?<host>\S+) \(pid (?<pid>\d+)\)/g)].map((m) => ({
    host: m.groups?.host ?? '',
    pid: Number(m.groups?.pid),
  }));
}

/**
 * True when every lock the error names was taken on this machine by a process that no longer
 * runs `pulumi`: nobody is updating the stack, so the locks may be cleared. False when any
 * holder may be alive (or on another machine), or the message names none.
 */
export function locksAreStale(message: string): boolean {
  const holders = lockHolders(message);
  return holders.length > 0 && holders.every((h) => h.host === os.hostname() && !runsPulumi(h.pid));
}

function runsPulumi(pid: number): boolean {
  try {
    const argv0 = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] ?? '';
    return path.basename(argv0).startsWith('pulumi');
  } catch {
    return false;
  }
}

/**
 * Kills what a dead update left running in the stack's work dir: Pulumi starts provider plugins
 * (our dynamic providers) in process groups of their own, so they outlive a `pulumi` killed with
 * the server, idle forever, and may still be half-way through a create. Returns their pids.
 */
export function killOrphanedPlugins(workDir: string): number[] {
  let dir: string;
  try {
    dir = fs.realpathSync(workDir);
  } catch {
    return [];
  }
  const killed: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let cwd: string;
    try {
      cwd = fs.readlinkSync(`/proc/${entry}/cwd`);
    } catch {
      continue; // gone, or not ours to read
    }
    if (cwd !== dir) continue;
    try {
      process.kill(Number(entry), 'SIGKILL');
      killed.push(Number(entry));
    } catch {
      // already gone
    }
  }
  return killed;
}
