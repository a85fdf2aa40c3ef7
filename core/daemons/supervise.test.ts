import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { freePort, httpOk } from './probes.ts';
import {
  type Daemon,
  type DaemonOptions,
  keptPorts,
  procStat,
  recordedDaemon,
  startDaemon,
  stopRecordedDaemon,
} from './supervise.ts';

const repoRoot = path.resolve(import.meta.dirname, '../..');

/**
 * A small real daemon: an HTTP server answering "<pid> <its TAG variable>", with a `sleep` child
 * in its process group (to check that a stop ends the whole group). IGNORE_TERM makes it
 * ignore SIGTERM.
 */
const SERVER = `
const { spawn } = require('node:child_process');
if (process.env.IGNORE_TERM) process.on('SIGTERM', () => {});
spawn('sleep', ['300'], { stdio: 'ignore' });
require('node:http')
  .createServer((req, res) => res.end(process.pid + ' ' + (process.env.TAG ?? '')))
  .listen(Number(process.argv[1]), '127.0.0.1');
`;

function options(dir: string, port: number, env: Record<string, string> = {}): DaemonOptions {
  return {
    name: 'echo',
    command: process.execPath,
    args: ['-e', SERVER, String(port)],
    env,
    logFile: path.join(dir, 'echo.log'),
    ports: { http: port },
    ready: () => httpOk({ url: `http://127.0.0.1:${port}/` }),
    readyTimeoutMs: 10_000,
    stopTimeoutMs: 2_000,
  };
}

async function answer(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/`);
  return res.text();
}

/** True while the process runs (a zombie counts as gone). */
function running(pid: number): boolean {
  const stat = procStat(pid);
  return stat !== undefined && stat.state !== 'Z';
}

/** Pids of the running processes in process group `pgid`. */
function groupMembers(pgid: number): number[] {
  return fs
    .readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .filter((pid) => {
      const stat = procStat(pid);
      return stat?.pgrp === pgid && stat.state !== 'Z';
    });
}

describe('startDaemon: pid files, adoption and replacement', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'supervise-'));
  const daemons: Daemon[] = [];
  const others: ChildProcess[] = [];
  let n = 0;
  const newDir = () => path.join(root, String(n++));
  const start = async (o: DaemonOptions) => {
    const d = await startDaemon(o);
    daemons.push(d);
    return d;
  };

  afterEach(async () => {
    for (const d of daemons.splice(0)) await d.stop();
    for (const c of others.splice(0)) if (c.pid) process.kill(-c.pid, 'SIGKILL');
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it('adopts the daemon of a server that was killed, and stops it with its whole group', async () => {
    const dir = newDir();
    const port = await freePort();
    // The "server": another process starts the daemon, then dies with SIGKILL.
    const script = path.join(root, 'parent.mts');
    fs.writeFileSync(
      script,
      `import { startDaemon } from ${JSON.stringify(path.join(repoRoot, 'core/daemons/supervise.ts'))};
import { httpOk } from ${JSON.stringify(path.join(repoRoot, 'core/daemons/probes.ts'))};
const [dir, port] = process.argv.slice(2);
const d = await startDaemon({
  name: 'echo', command: process.execPath, args: ['-e', ${JSON.stringify(SERVER)}, port], env: {},
  logFile: dir + '/echo.log', ports: { http: Number(port) },
  ready: () => httpOk({ url: 'http://127.0.0.1:' + port + '/' }), readyTimeoutMs: 10000, stopTimeoutMs: 2000,
});
console.log(JSON.stringify({ pid: d.pid }));
setInterval(() => {}, 1000);
`,
    );
    const parent = spawn(
      process.execPath,
      ['--import', path.join(repoRoot, 'node_modules/tsx/dist/loader.mjs'), script, dir, String(port)],
      { stdio: ['ignore', 'pipe', 'inherit'], detached: true },
    );
    others.push(parent);
    let out = '';
    parent.stdout?.on('data', (c) => {
      out += c;
    });
    for (let i = 0; i < 300 && !out.includes('\n'); i++) await sleep(100);
    const { pid } = JSON.parse(out) as { pid: number };
    const exited = new Promise((resolve) => parent.once('exit', resolve));
    process.kill(-(parent.pid as number), 'SIGKILL');
    await exited;
    expect(running(pid)).toBe(true); // orphaned, still serving
    expect(keptPorts(path.join(dir, 'echo.pid'))).toEqual({ http: port });

    const t0 = Date.now();
    const adopted = await start(options(dir, port));
    expect(adopted).toMatchObject({ adopted: true, pid });
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(await answer(port)).toBe(`${pid} `);
    const members = groupMembers(pid);
    expect(members.length).toBe(2); // the daemon and its sleep

    await adopted.stop();
    for (const m of members) expect(running(m)).toBe(false);
    expect(await adopted.exited).toBe('gone');
    expect(fs.existsSync(path.join(dir, 'echo.pid'))).toBe(false);
    expect(await httpOk({ url: `http://127.0.0.1:${port}/` })).toBe(false);
    expect(keptPorts(path.join(dir, 'echo.pid'))).toBeUndefined();
  });

  it('replaces a running daemon whose fingerprint changed (here: its environment)', async () => {
    const dir = newDir();
    const port = await freePort();
    const first = await start(options(dir, port, { TAG: 'one' }));
    const firstGroup = groupMembers(first.pid);
    expect(await answer(port)).toBe(`${first.pid} one`);

    const second = await start(options(dir, port, { TAG: 'two' }));
    expect(second.adopted).toBe(false);
    expect(second.pid).not.toBe(first.pid);
    for (const m of firstGroup) expect(running(m)).toBe(false);
    expect(await answer(port)).toBe(`${second.pid} two`);
    // The same again is adopted.
    const third = await start(options(dir, port, { TAG: 'two' }));
    expect(third).toMatchObject({ adopted: true, pid: second.pid });
  });

  it('replaces a daemon that no longer answers its readiness probe', async () => {
    const dir = newDir();
    const port = await freePort();
    const first = await start(options(dir, port));
    process.kill(first.pid, 'SIGSTOP'); // alive, but it answers nothing
    const second = await start({ ...options(dir, port), readyTimeoutMs: 3_000 });
    expect(second.adopted).toBe(false);
    expect(running(first.pid)).toBe(false);
    expect(await answer(port)).toBe(`${second.pid} `);
  });

  it('never touches the process a recycled pid now belongs to', async () => {
    const dir = newDir();
    const port = await freePort();
    // Another program, leading its own process group, holds the pid the file names.
    const stranger = spawn('sleep', ['60'], { stdio: 'ignore', detached: true });
    others.push(stranger);
    const pid = stranger.pid as number;
    const real = procStat(pid)?.startTime as string;
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(
      path.join(dir, 'echo.pid'),
      JSON.stringify({
        pid,
        startTime: String(Number(real) - 1),
        fingerprint: 'x',
        command: process.execPath,
        ports: { http: 1 },
        startedAt: new Date().toISOString(),
      }),
    );
    expect(keptPorts(path.join(dir, 'echo.pid'))).toBeUndefined();
    const d = await start(options(dir, port));
    expect(d.adopted).toBe(false);
    expect(d.pid).not.toBe(pid);
    expect(running(pid)).toBe(true);
    const record = JSON.parse(fs.readFileSync(path.join(dir, 'echo.pid'), 'utf8'));
    expect(record).toMatchObject({ pid: d.pid, startTime: procStat(d.pid)?.startTime });
  });

  it('ends what is left of a group whose leader died, before starting a new daemon', async () => {
    const dir = newDir();
    const port = await freePort();
    const first = await start(options(dir, port));
    const [orphan] = groupMembers(first.pid).filter((p) => p !== first.pid);
    process.kill(first.pid, 'SIGKILL');
    await first.exited;
    expect(orphan && running(orphan)).toBe(true);
    const second = await start(options(dir, port));
    expect(second.adopted).toBe(false);
    expect(running(orphan as number)).toBe(false);
  });

  it('escalates to SIGKILL when the daemon ignores SIGTERM', async () => {
    const dir = newDir();
    const port = await freePort();
    const d = await start({ ...options(dir, port, { IGNORE_TERM: '1' }), stopTimeoutMs: 1_000 });
    const t0 = Date.now();
    await d.stop();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(running(d.pid)).toBe(false);
    expect(await d.exited).toBe('SIGKILL');
  });

  it("gives the daemon an explicit environment: its own variables, none of the server's settings", async () => {
    const dir = newDir();
    const port = await freePort();
    process.env.DEPLOY_MCP_SECRET_KEY = 'supervise-test-secret';
    try {
      const d = await start(options(dir, port, { TAG: 'env' }));
      const environ = fs.readFileSync(`/proc/${d.pid}/environ`, 'utf8').split('\0').filter(Boolean);
      const names = environ.map((e) => e.slice(0, e.indexOf('=')));
      expect(names).toContain('TAG');
      expect(names).toContain('PATH');
      expect(
        names.filter((n) => !['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR', 'TAG'].includes(n)),
      ).toEqual([]);
      expect(environ.join('\n')).not.toContain('supervise-test-secret');
    } finally {
      delete process.env.DEPLOY_MCP_SECRET_KEY;
    }
  });

  it('stops a daemon by its pid file alone, group and all (what `cluster down` does)', async () => {
    const dir = newDir();
    const port = await freePort();
    const d = await start(options(dir, port));
    const pidFile = path.join(dir, 'echo.pid');
    const members = groupMembers(d.pid);
    expect(recordedDaemon(pidFile)).toEqual({ pid: d.pid, command: process.execPath });

    expect(await stopRecordedDaemon(pidFile, 2000)).toBe(true);
    for (const m of members) expect(running(m)).toBe(false);
    expect(fs.existsSync(pidFile)).toBe(false);
    expect(recordedDaemon(pidFile)).toBeUndefined();
    expect(await stopRecordedDaemon(pidFile)).toBe(false);
  });
});
