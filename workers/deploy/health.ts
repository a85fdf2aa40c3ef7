import fs from 'node:fs';
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ContainerEngine } from '../../core/container-engine.ts';
import {
  deniedHint,
  devServerHint,
  explainCrash,
  explainUnreachable,
  listeningSockets,
  loopbackBind,
} from './diagnosis.ts';

export type HealthResult =
  | { healthy: true; waitedMs: number }
  | { healthy: false; reason: string; logTail: string[]; waitedMs: number };

export type HealthOptions = {
  engine: ContainerEngine;
  containerId: string;
  /** Where the container's app port is published on this host. */
  hostPort: number;
  /** The port the app was told to listen on (PORT). */
  port: number;
  /** The health path: healthy once it answers with a status below 500 (default "/"). */
  path?: string;
  /** How long the path may answer 5xx before the release fails (default 10 s). */
  errorWindowMs?: number;
  timeoutMs: number;
  /** The container's memory limit, named when the app is killed for memory. */
  memoryMb?: number;
  /** Called while waiting (activity heartbeats). */
  onWait?: () => void;
};

/**
 * Waits until the app answers its health path with a status below 500 on its published port, or
 * says why it will not: the process exited (with its code and how long it ran), was killed for
 * memory, listens on another port than PORT, answered 5xx for `errorWindowMs` (with the status
 * line), or stayed silent past the timeout. Failures carry the log tail.
 */
export async function waitUntilServing(o: HealthOptions): Promise<HealthResult> {
  const started = Date.now();
  const path = o.path ?? '/';
  const errorWindowMs = o.errorWindowMs ?? 10_000;
  let failingSince: number | undefined;
  // A process that exited: its log line that says why is quoted (diagnosis.ts, explainCrash).
  const fail = async (reason: string, exited = false): Promise<HealthResult> => {
    const logTail = await o.engine.logs(o.containerId, 100).catch(() => []);
    const command = (await o.engine.inspectContainer(o.containerId).catch(() => undefined))?.Config?.Cmd;
    const said = exited ? explainCrash(reason, logTail) : reason + deniedHint(logTail);
    return {
      healthy: false,
      reason: withDevServerHint(said, logTail, command?.join(' ')),
      logTail,
      waitedMs: Date.now() - started,
    };
  };
  while (Date.now() - started < o.timeoutMs) {
    o.onWait?.();
    const info = await o.engine.inspectContainer(o.containerId);
    if (!info) return fail('the container disappeared while starting');
    const state = info.State;
    const limit = o.memoryMb ? ` (limit ${o.memoryMb} MiB)` : '';
    if (state.OOMKilled) return fail(`the process was killed: it ran out of memory${limit}; raise memory`);
    const restarts = info.RestartCount ?? 0;
    if (!state.Running || restarts > 0) {
      // After a restart the state shows the new run; the crash's code is in the engine's events.
      const codes = restarts > 0 ? await o.engine.exitCodes(o.containerId, new Date(started - 60_000)) : [];
      const code = codes.find((c) => c !== 0) ?? state.ExitCode;
      const ran = Date.parse(state.FinishedAt) - Date.parse(state.StartedAt);
      const after =
        restarts === 0 && Number.isFinite(ran) && ran >= 0 ? ` after ${(ran / 1000).toFixed(1)} s` : '';
      const again = restarts > 0 ? ` (crash loop: restarted ${restarts} time${restarts > 1 ? 's' : ''})` : '';
      // SIGKILL: the kernel's OOM killer (a restart clears the OOMKilled flag; nothing else here
      // kills an app that is starting).
      if (code === 137)
        return fail(
          `the process was killed (exit code 137)${again}: it ran out of memory${limit}; raise memory`,
        );
      return fail(`the process exited with code ${code}${after}${again}`, true);
    }
    const answer = await requestStatus('127.0.0.1', o.hostPort, path);
    if (answer && answer.status < 500) return { healthy: true, waitedMs: Date.now() - started };
    if (answer) {
      failingSince ??= Date.now();
      if (Date.now() - failingSince >= errorWindowMs)
        return fail(serverErrorReason(path, answer.line, errorWindowMs));
    } else failingSince = undefined;
    if (Date.now() - started > 3000) {
      const loopback = loopbackBind(listeningSockets(state.Pid), o.port);
      if (loopback) return fail(loopback);
      const listening = listeningPorts(state.Pid);
      if (listening.length && !listening.includes(o.port)) {
        return fail(
          `the app listens on ${listening.join(', ')}, expected PORT=${o.port}: listen on process.env.PORT, or set port`,
        );
      }
    }
    await sleep(healthPollDelay(Date.now() - started));
  }
  const silent = `the app did not answer HTTP on PORT=${o.port} within ${Math.round(o.timeoutMs / 1000)} s`;
  const info = await o.engine.inspectContainer(o.containerId).catch(() => undefined);
  const logTail = await o.engine.logs(o.containerId, 100).catch(() => []);
  const sockets = info?.State.Pid ? listeningSockets(info.State.Pid) : [];
  return fail(explainUnreachable(silent, { sockets, port: o.port, logTail }));
}

/**
 * The pause between two health checks, `elapsedMs` after the first: 100 ms while most apps
 * start (the first 5 s; a check is an inspect and one local request), so a deploy is not up to
 * 300 ms late to see its app answer; then 300 ms.
 */
export function healthPollDelay(elapsedMs: number): number {
  return elapsedMs < 5_000 ? 100 : 300;
}

/** Why a release fails whose health path kept answering 5xx (both runtimes say it alike). */
export function serverErrorReason(path: string, line: string, windowMs: number): string {
  return (
    `GET ${path} answered "${line}" for ${Math.round(windowMs / 1000)} s: the app starts but ` +
    'fails to serve; its log tail below says why (or set health_check_path to a path that answers once ' +
    'the app is ready)'
  );
}

/** The status of GET `path` on host:port ("503 Service Unavailable"); undefined when nothing answers HTTP. */
export function requestStatus(
  host: string,
  port: number,
  path: string,
): Promise<{ status: number; line: string } | undefined> {
  return new Promise((resolve) => {
    const req = http.get({ host, port, path, timeout: 2000 }, (res) => {
      res.resume();
      const status = res.statusCode ?? 0;
      const text = (res.statusMessage || http.STATUS_CODES[status] || '').slice(0, 100);
      resolve({ status, line: `${status}${text ? ` ${text}` : ''}` });
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
  });
}

/** TCP ports a process listens on, from its network namespace's /proc tables. */
export function listeningPorts(pid: number): number[] {
  const ports = new Set<number>();
  for (const table of ['tcp', 'tcp6']) {
    let text = '';
    try {
      text = fs.readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[3] !== '0A') continue; // LISTEN
      const port = Number.parseInt(cols[1]?.split(':')[1] ?? '', 16);
      if (port) ports.add(port);
    }
  }
  return [...ports].sort((a, b) => a - b);
}

/** Adds "it runs a development server …" (diagnosis.ts) unless the reason already says it. */
function withDevServerHint(reason: string, logTail: string[], command?: string): string {
  const dev = devServerHint(logTail, command);
  return dev && !reason.includes(dev) ? `${reason}; ${dev}` : reason;
}
