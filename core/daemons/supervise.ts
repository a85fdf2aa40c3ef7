import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export type DaemonOptions = {
  /** Short name used in errors, e.g. "temporal". */
  name: string;
  command: string;
  args: string[];
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Combined stdout/stderr goes here (appended), so a failed start can be diagnosed. */
  logFile: string;
  /** Resolves true once the daemon serves. Polled until `readyTimeoutMs`. */
  ready: () => Promise<boolean>;
  readyTimeoutMs?: number;
  /** Grace period between SIGTERM and SIGKILL on stop. */
  stopTimeoutMs?: number;
};

export type Daemon = {
  name: string;
  pid: number;
  /** Stops the daemon and waits for it to exit. Safe to call more than once. */
  stop: () => Promise<void>;
  /** Resolves with the exit code (or signal name) when the process ends. */
  exited: Promise<number | string>;
};

export class DaemonStartError extends Error {
  override name = 'DaemonStartError';
}

/** Starts a long-running child process and resolves once its readiness probe passes. */
export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  fs.mkdirSync(path.dirname(options.logFile), { recursive: true });
  const logFd = fs.openSync(options.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(options.command, options.args, {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', logFd, logFd],
      // Own process group, so stop() also ends the daemon's children.
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

  const daemon: Daemon = {
    name: options.name,
    pid: child.pid ?? -1,
    exited,
    stop: () => stopProcessGroup(child, exited, options.stopTimeoutMs ?? 10_000),
  };

  const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
  let exitedEarly: number | string | undefined;
  void exited.then((code) => {
    exitedEarly = code;
  });
  while (Date.now() < deadline) {
    if (exitedEarly !== undefined) {
      const err = await Promise.race([spawnError, sleep(10).then(() => undefined)]);
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

async function stopProcessGroup(
  child: ChildProcess,
  exited: Promise<number | string>,
  timeoutMs: number,
): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  signalGroup(child.pid, 'SIGTERM');
  // The grace timer is unref'd: once the daemon exits it must not keep this process alive.
  const done = await Promise.race([
    exited.then(() => true),
    sleep(timeoutMs, undefined, { ref: false }).then(() => false),
  ]);
  if (!done) {
    signalGroup(child.pid, 'SIGKILL');
    await exited;
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals) {
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
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
