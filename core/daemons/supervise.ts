import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { childEnv } from '../child-env.ts';

/*
 * The daemons of the embedded default (Temporal dev server, registry, buildkitd, podman's API
 * service, Traefik) run in process groups of their own, so they outlive a server that dies
 * without stopping them (kill -9, the OOM killer). The next start finds them again instead of
 * failing on their ports, and live apps keep being served by a Traefik that never stopped:
 *
 * - Each daemon has a pid file in its own dir (`<name>.pid`, JSON): its pid, its start time
 *   (field 22 of /proc/<pid>/stat, so a recycled pid is never taken for it), a fingerprint of
 *   what it was started with (binary, args, environment, working dir, its config files'
 *   contents) and the ports it was given. Ports a daemon picks at each start (Temporal's HTTP
 *   and metrics ports, Traefik's ping port) are taken from the running instance (`keptPorts`),
 *   so the fingerprint and the readiness probe stay the same across restarts.
 * - `startDaemon` reads the pid file first. The same process, with the same fingerprint, whose
 *   readiness probe passes, is adopted: returned as the running daemon; its `stop()` signals its
 *   process group and waits by polling /proc; `exited` resolves once it is gone. Anything else
 *   still alive there (another fingerprint, not ready) is stopped (SIGTERM to its group, SIGKILL
 *   after the grace period) before a new daemon starts.
 * - `stop()` waits until the whole process group is gone, then removes the pid file: nothing is
 *   left after a clean stop.
 * - A daemon gets an explicit environment (core/child-env.ts plus its own variables), never the
 *   server's: no `DEPLOY_MCP_*` setting reaches it.
 */

export type DaemonOptions = {
  /** Short name used in errors, e.g. "temporal". */
  name: string;
  command: string;
  args: string[];
  /** The daemon's own variables, on top of core/child-env.ts's basics (PATH, HOME, locale). */
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Combined stdout/stderr goes here (appended), so a failed start can be diagnosed. */
  logFile: string;
  /** Its pid file; default `<dir of logFile>/<name>.pid`. One daemon per file. */
  pidFile?: string;
  /** Files the daemon reads its configuration from: their contents are part of the fingerprint. */
  configFiles?: string[];
  /** Ports the daemon was given, recorded in its pid file (`keptPorts` returns them). */
  ports?: Record<string, number>;
  /** Runs before a new process is spawned, never when one is adopted (e.g. removes a stale socket). */
  beforeSpawn?: () => void;
  /** Resolves true once the daemon serves. Polled until `readyTimeoutMs`. */
  ready: () => Promise<boolean>;
  readyTimeoutMs?: number;
  /** Grace period between SIGTERM and SIGKILL on stop. */
  stopTimeoutMs?: number;
};

export type Daemon = {
  name: string;
  pid: number;
  /** True when an instance an earlier server started was found running and taken over. */
  adopted: boolean;
  /** Stops the daemon and waits for its process group to end. Safe to call more than once. */
  stop: () => Promise<void>;
  /** Resolves with the exit code (or signal name; "gone" for an adopted one) when it ends. */
  exited: Promise<number | string>;
};

export class DaemonStartError extends Error {
  override name = 'DaemonStartError';
}

/** What a pid file holds. */
type PidRecord = {
  pid: number;
  /** Field 22 of /proc/<pid>/stat: clock ticks after boot. */
  startTime: string;
  fingerprint: string;
  command: string;
  ports?: Record<string, number>;
  startedAt: string;
};

/** How long an adopted daemon's readiness probe may take to pass before it is replaced. */
const ADOPT_READY_MS = 10_000;
/** After SIGKILL, how long to wait for the group to disappear. */
const KILL_WAIT_MS = 5_000;

/**
 * Starts a long-running child process and resolves once its readiness probe passes, or adopts
 * the instance recorded in its pid file when it is still the same daemon and ready.
 */
export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const pidFile = options.pidFile ?? path.join(path.dirname(options.logFile), `${options.name}.pid`);
  const stopTimeoutMs = options.stopTimeoutMs ?? 10_000;
  const env = childEnv(options.env);
  const fingerprint = fingerprintOf(options, env);

  const previous = readPidFile(pidFile);
  if (previous && groupAlive(previous)) {
    if (
      leaderAlive(previous) &&
      previous.fingerprint === fingerprint &&
      (await probeUntil(options.ready, Math.min(ADOPT_READY_MS, options.readyTimeoutMs ?? 30_000)))
    ) {
      return adopt(options.name, previous, pidFile, stopTimeoutMs);
    }
    // Another configuration, or it no longer answers: replace it.
    await stopGroup(previous, stopTimeoutMs);
  }
  fs.rmSync(pidFile, { force: true });
  options.beforeSpawn?.();

  fs.mkdirSync(path.dirname(options.logFile), { recursive: true });
  const logFd = fs.openSync(options.logFile, 'a', 0o600);
  let child: ChildProcess;
  try {
    child = spawn(options.command, options.args, {
      cwd: options.cwd,
      env,
      stdio: ['ignore', logFd, logFd],
      // Own process group (a session leader): stop() ends the daemon's children too, and the
      // daemon outlives a server killed with its whole group (it is adopted on the next start).
      detached: true,
    });
  } finally {
    fs.closeSync(logFd);
  }
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
    child.once('error', () => resolve('spawn-error'));
  });
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));

  const stat = child.pid === undefined ? undefined : procStat(child.pid);
  const record: PidRecord | undefined =
    child.pid !== undefined && stat
      ? {
          pid: child.pid,
          startTime: stat.startTime,
          fingerprint,
          command: options.command,
          ...(options.ports ? { ports: options.ports } : {}),
          startedAt: new Date().toISOString(),
        }
      : undefined;
  if (record) writePidFile(pidFile, record);

  let stopping: Promise<void> | undefined;
  const daemon: Daemon = {
    name: options.name,
    pid: child.pid ?? -1,
    adopted: false,
    exited,
    stop: () => {
      stopping ??= (async () => {
        if (record) {
          await stopGroup(record, stopTimeoutMs);
          // The group is gone; reap the leader (its exit event) before reporting stopped.
          await Promise.race([exited, sleep(KILL_WAIT_MS)]);
          removePidFile(pidFile, record);
        }
      })();
      return stopping;
    },
  };

  const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
  let exitedEarly: number | string | undefined;
  void exited.then((code) => {
    exitedEarly = code;
  });
  while (Date.now() < deadline) {
    if (exitedEarly !== undefined) {
      const err = await Promise.race([spawnError, sleep(10).then(() => undefined)]);
      await daemon.stop();
      throw new DaemonStartError(
        `${options.name} exited during start-up (${err?.message ?? `code ${exitedEarly}`})` +
          logTail(options.logFile),
      );
    }
    if (await options.ready().catch(() => false)) return daemon;
    await sleep(100);
  }
  await daemon.stop();
  throw new DaemonStartError(
    `${options.name} did not become ready within ${options.readyTimeoutMs ?? 30_000} ms` +
      logTail(options.logFile),
  );
}

/**
 * The ports recorded for the daemon of `pidFile` while that process still runs; undefined when
 * none runs. A daemon that picks free ports at start reuses these so it can be adopted.
 */
export function keptPorts(pidFile: string): Record<string, number> | undefined {
  const record = readPidFile(pidFile);
  return record && leaderAlive(record) ? record.ports : undefined;
}

/** The daemon recorded in `pidFile` while some process of its group runs; undefined otherwise. */
export function recordedDaemon(pidFile: string): { pid: number; command: string } | undefined {
  const record = readPidFile(pidFile);
  return record && groupAlive(record) ? { pid: record.pid, command: record.command } : undefined;
}

/**
 * Stops the daemon recorded in `pidFile`, whichever process started it (e.g. `cluster down` run
 * after `cluster up` exited), and removes the file. False when none was running.
 */
export async function stopRecordedDaemon(pidFile: string, stopTimeoutMs = 10_000): Promise<boolean> {
  const record = readPidFile(pidFile);
  if (!record) return false;
  const alive = groupAlive(record);
  await stopGroup(record, stopTimeoutMs);
  removePidFile(pidFile, record);
  return alive;
}

/** The running daemon an earlier server started, taken over as this server's. */
function adopt(name: string, record: PidRecord, pidFile: string, stopTimeoutMs: number): Daemon {
  // Not our child: its end is seen by polling /proc. The timers are unref'd: waiting for it
  // must not keep this process alive.
  const exited = (async () => {
    while (groupAlive(record)) await sleep(250, undefined, { ref: false });
    return 'gone';
  })();
  let stopping: Promise<void> | undefined;
  return {
    name,
    pid: record.pid,
    adopted: true,
    exited,
    stop: () => {
      stopping ??= stopGroup(record, stopTimeoutMs).then(() => removePidFile(pidFile, record));
      return stopping;
    },
  };
}

/** SIGTERM to the recorded process group; SIGKILL once the grace period is over. */
async function stopGroup(record: PidRecord, graceMs: number): Promise<void> {
  if (!groupAlive(record)) return;
  signalGroup(record, 'SIGTERM');
  if (await waitGone(record, graceMs)) return;
  signalGroup(record, 'SIGKILL');
  if (!(await waitGone(record, KILL_WAIT_MS))) {
    throw new Error(`process group ${record.pid} (${record.command}) survived SIGKILL`);
  }
}

async function waitGone(record: PidRecord, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (groupAlive(record)) {
    if (Date.now() >= deadline) return false;
    await sleep(100);
  }
  return true;
}

function signalGroup(record: PidRecord, signal: NodeJS.Signals) {
  try {
    process.kill(-record.pid, signal);
  } catch {
    // Already gone.
  }
}

/** The recorded process itself still runs (same pid and start time, not a zombie). */
function leaderAlive(record: PidRecord): boolean {
  const stat = procStat(record.pid);
  return stat !== undefined && stat.startTime === record.startTime && !isDead(stat.state);
}

/**
 * Some process of the recorded group still runs. A group outlives its leader while members
 * remain, and its id is not reused as a pid meanwhile: so when the pid runs another program (a
 * different start time), the group was gone before that pid was handed out again.
 */
function groupAlive(record: PidRecord): boolean {
  const leader = procStat(record.pid);
  if (leader && leader.startTime !== record.startTime) return false;
  if (leader && !isDead(leader.state)) return true;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = procStat(Number(entry));
    if (stat && stat.pgrp === record.pid && !isDead(stat.state)) return true;
  }
  return false;
}

function isDead(state: string) {
  return state === 'Z' || state === 'X';
}

/** Fields of /proc/<pid>/stat; undefined when no such process. */
export function procStat(pid: number): { state: string; pgrp: number; startTime: string } | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid pgrp …": comm may hold spaces and parentheses; fields count on from
  // the last ")". Field 3 is the state, 5 the process group, 22 the start time.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const [state, pgrp, startTime] = [fields[0], fields[2], fields[19]];
  if (!state || !pgrp || !startTime) return undefined;
  return { state, pgrp: Number(pgrp), startTime };
}

function fingerprintOf(o: DaemonOptions, env: Record<string, string>): string {
  const sha = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
  const config = (o.configFiles ?? []).map((file) => {
    try {
      return [file, sha(fs.readFileSync(file))];
    } catch {
      return [file, null];
    }
  });
  return sha(
    JSON.stringify({
      command: o.command,
      binary: binaryIdentity(o.command, env.PATH ?? ''),
      args: o.args,
      env: Object.entries(env).sort(([a], [b]) => (a < b ? -1 : 1)),
      cwd: o.cwd ?? null,
      config,
    }),
  );
}

/** Path, size and mtime of the executable `command` resolves to: an upgraded binary differs. */
function binaryIdentity(command: string, searchPath: string): string | null {
  const candidates = command.includes('/')
    ? [command]
    : searchPath
        .split(':')
        .filter(Boolean)
        .map((dir) => path.join(dir, command));
  for (const file of candidates) {
    try {
      const s = fs.statSync(file);
      if (s.isFile()) return `${path.resolve(file)}:${s.size}:${s.mtimeMs}`;
    } catch {
      // not in this dir
    }
  }
  return null;
}

function readPidFile(file: string): PidRecord | undefined {
  try {
    const r = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<PidRecord>;
    if (typeof r.pid !== 'number' || r.pid <= 1 || typeof r.startTime !== 'string') return undefined;
    if (typeof r.fingerprint !== 'string' || typeof r.command !== 'string') return undefined;
    return r as PidRecord;
  } catch {
    return undefined;
  }
}

function writePidFile(file: string, record: PidRecord) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(record)}\n`, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

/** Removes the pid file if it still records `record` (a newer daemon may own it by now). */
function removePidFile(file: string, record: PidRecord) {
  const current = readPidFile(file);
  if (current && (current.pid !== record.pid || current.startTime !== record.startTime)) return;
  fs.rmSync(file, { force: true });
}

/** Polls `ready` until it passes (true) or `ms` elapse (false). */
async function probeUntil(ready: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  do {
    if (await ready().catch(() => false)) return true;
    await sleep(100);
  } while (Date.now() < deadline);
  return false;
}

/** The last lines of a daemon's log, for error messages. */
export function logTail(file: string, lines = 15): string {
  try {
    const text = fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    return text ? `\n--- last lines of ${file} ---\n${text}` : '';
  } catch {
    return '';
  }
}
