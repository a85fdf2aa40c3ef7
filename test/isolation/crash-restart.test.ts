import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { procStat } from '../../core/daemons/supervise.ts';
import { openDatabase } from '../../core/db/client.ts';
import { IN_FLIGHT_STATUSES } from '../../workers/deploy/statuses.ts';
import { agentGit, pushNewRepo } from '../support/git.ts';
import { eventually, httpGet } from '../support/http.ts';
import { call, connectClient, text } from '../support/mcp.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';
import { CLI, type ServeProcess, startServe } from '../support/serve.ts';

const exec = promisify(execFile);
/** Unique text on the slow build step's command line: pgrep finds the step while it runs. */
const MARKER = `crash-build-step-${process.pid}-${Date.now()}`;
const DAEMONS = ['buildkitd', 'podman', 'registry', 'temporal', 'traefik'];

type ServiceView = {
  status: string;
  url: string | null;
  deployment: { id: string; status: string; reason: string | null; commit: string } | null;
};

type Proc = { pid: number; ppid: number; pgrp: number; startTime: string };

/** Every process on the machine, from /proc/<pid>/stat. */
function processes(): Proc[] {
  const out: Proc[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let text: string;
    try {
      text = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    if (f[0] === 'Z') continue;
    out.push({ pid: Number(entry), ppid: Number(f[1]), pgrp: Number(f[2]), startTime: f[19] ?? '' });
  }
  return out;
}

/** The pid files of the data dir's daemons: name → pid. */
function pidFiles(dataDir: string): Record<string, number> {
  const found: Record<string, number> = {};
  for (const dir of fs.readdirSync(dataDir)) {
    const full = path.join(dataDir, dir);
    if (!fs.statSync(full).isDirectory()) continue;
    for (const f of fs.readdirSync(full))
      if (f.endsWith('.pid'))
        found[f.slice(0, -4)] = (
          JSON.parse(fs.readFileSync(path.join(full, f), 'utf8')) as { pid: number }
        ).pid;
  }
  return found;
}

/**
 * The processes the server started: its descendants (walking parent pids), and the daemons in
 * process groups of their own, with everything in those groups.
 */
function serverProcesses(serverPid: number, dataDir: string): Proc[] {
  const all = processes();
  const children = new Map<number, Proc[]>();
  for (const p of all) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
  const groups = new Set(Object.values(pidFiles(dataDir)));
  const found = new Map<number, Proc>();
  const queue = [...(children.get(serverPid) ?? []), ...all.filter((p) => groups.has(p.pgrp))];
  for (let i = 0; i < queue.length && i < 10_000; i++) {
    const p = queue[i] as Proc;
    if (found.has(p.pid)) continue;
    found.set(p.pid, p);
    queue.push(...(children.get(p.pid) ?? []));
  }
  return [...found.values()];
}

/**
 * Processes whose working dir or command line names `dir`, except the monitors of app containers
 * (conmon, started in podman's working dir): apps keep running while the server is stopped.
 */
function processesUnder(dir: string): string[] {
  const hits: string[] = [];
  for (const p of processes()) {
    try {
      if (path.basename(fs.readlinkSync(`/proc/${p.pid}/exe`)) === 'conmon') continue;
      const cmdline = fs.readFileSync(`/proc/${p.pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      const cwd = fs.readlinkSync(`/proc/${p.pid}/cwd`);
      if (cmdline.includes(dir) || cwd.startsWith(dir)) hits.push(`${p.pid} (cwd ${cwd}): ${cmdline}`);
    } catch {
      // gone
    }
  }
  return hits;
}

const mode = (file: string) => fs.statSync(file).mode & 0o777;

describe('isolation: npm start killed with kill -9 during a build, then restarted', () => {
  const work = scratchDir('crash-restart', path.join(repoRoot, '.data', 'test'));
  const dataDir = path.join(work.dir, 'data');
  const secretKey = randomBytes(32).toString('base64');
  const git = agentGit(work.dir);
  const app = path.join(work.dir, 'app');
  let serve: ServeProcess;
  let client: Client;
  let remote: string;
  let apiKey: string;
  let userId: string | undefined;

  beforeAll(async () => {
    serve = await startServe(dataDir, { env: { DEPLOY_MCP_SECRET_KEY: secretKey } });
    await exec(CLI, ['users', 'create', 'agent@example.com'], { env: serve.env });
    const { stdout } = await exec(CLI, ['keys', 'create', 'agent@example.com'], { env: serve.env });
    apiKey = stdout.trim().split('\n').at(-1) ?? '';
    client = await connectClient(`${serve.env.DEPLOY_MCP_PUBLIC_URL}/mcp`, apiKey);
  });

  afterAll(async () => {
    await client?.close();
    await serve?.stop();
    // Daemons a failed run left behind (their pids are in the pid files this test's servers wrote).
    if (fs.existsSync(dataDir))
      for (const pid of Object.values(pidFiles(dataDir))) {
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    if (userId)
      await exec('podman', ['rm', '-f', '--filter', `label=deploy-mcp.user=${userId}`]).catch(
        () => undefined,
      );
    work.cleanup();
  });

  async function service(): Promise<ServiceView> {
    return (await call(client, 'get_service', { name: 'web' })).structuredContent as ServiceView;
  }

  it('gives no child process the master key or any other server setting (checked during a deploy)', async () => {
    const settings = Object.keys(serve.env).filter((n) => n.startsWith('DEPLOY_MCP_'));
    expect(settings).toContain('DEPLOY_MCP_SECRET_KEY');
    const serverPid = serve.child.pid as number;
    const serverCmdline = fs.readFileSync(`/proc/${serverPid}/cmdline`, 'utf8');
    const seen = new Map<string, string>(); // pid:starttime → command line
    const forks = new Map<string, number>(); // pid:starttime → first seen between fork and exec
    const leaks: string[] = [];
    const sample = () => {
      for (const p of serverProcesses(serverPid, dataDir)) {
        const key = `${p.pid}:${p.startTime}`;
        if (seen.has(key)) continue;
        let environ: string;
        let cmdline: string;
        try {
          environ = fs.readFileSync(`/proc/${p.pid}/environ`, 'utf8');
          cmdline = fs.readFileSync(`/proc/${p.pid}/cmdline`, 'utf8');
        } catch {
          continue; // ended meanwhile
        }
        // Between fork and exec a child is still a copy of the server (its command line and the
        // server's initial environment): look again once it has run its own program. One that
        // stays a copy for 2 s is judged as it is.
        if (p.ppid === serverPid && cmdline === serverCmdline) {
          const first = forks.get(key) ?? Date.now();
          forks.set(key, first);
          if (Date.now() - first < 2000) continue;
        }
        cmdline = cmdline.replaceAll('\0', ' ').trim();
        seen.set(key, cmdline);
        const names = environ.split('\0').map((e) => e.slice(0, e.indexOf('=')));
        const leaked = settings.filter((s) => names.includes(s));
        if (leaked.length || environ.includes(secretKey))
          leaks.push(`${p.pid} (ppid ${p.ppid}, pgrp ${p.pgrp}) ${cmdline}: ${leaked.join(', ')}`);
        // Git tokens never sit on a command line (every local user can read those).
        if (/mlg_[A-Za-z0-9_-]{8,}/.test(cmdline)) leaks.push(`${p.pid} ${cmdline}: a git token`);
      }
    };

    const repo = await call(client, 'create_repo', { name: 'web' });
    remote = (repo.structuredContent as { git_remote: string }).git_remote;
    fs.cpSync(path.join(repoRoot, 'test/fixtures/apps/node-hello'), app, { recursive: true });
    await pushNewRepo(git, app, remote);
    const created = await call(client, 'create_service', {
      name: 'web',
      repo: 'web',
      env_vars: { MESSAGE: 'hello v1' },
      wait: false,
    });
    if (created.isError) throw new Error(text(created));
    // Sample every process the server runs until the deploy ends (bounded: 6 minutes).
    let view = await service();
    const deadline = Date.now() + 360_000;
    for (let i = 0; i < 3600 && Date.now() < deadline; i++) {
      sample();
      if (i % 10 === 0) view = await service();
      if (view.deployment && !IN_FLIGHT_STATUSES.includes(view.deployment.status)) break;
      await sleep(100);
    }
    expect(view.deployment, JSON.stringify(view)).toMatchObject({ status: 'active', reason: null });
    expect(leaks).toEqual([]);
    // The sample saw the daemons and the deploy's own children, so it checked them.
    const commands = [...seen.values()].join('\n');
    for (const d of DAEMONS) expect(commands).toContain(d);
    expect(commands).toMatch(/buildctl .*build/);
    expect(commands).toMatch(/pulumi up/);

    // The data files are private to the server's user; the key came from the environment.
    expect(mode(dataDir)).toBe(0o700);
    const db = path.join(dataDir, 'deploy-mcp.db');
    expect(mode(db)).toBe(0o600);
    if (fs.existsSync(`${db}-wal`)) expect(mode(`${db}-wal`)).toBe(0o600);
    expect(fs.existsSync(path.join(dataDir, 'secret.key'))).toBe(false);
  });

  it('restarts on the same ports; the live app answers throughout; nothing is left after a clean stop', async () => {
    const db = await openDatabase(`file:${path.join(dataDir, 'deploy-mcp.db')}`);
    try {
      userId = (await db.prisma.user.findUniqueOrThrow({ where: { email: 'agent@example.com' } })).id;
    } finally {
      await db.close();
    }
    const live = await service();
    const host = new URL(live.url ?? '').hostname;
    const ingress = `http://127.0.0.1:${serve.ports.ingress}/`;
    expect((await httpGet(ingress, host)).body).toMatch(/^hello v1/);

    // A second deploy whose build step is slow enough to be killed in the middle of it.
    const pkg = JSON.parse(fs.readFileSync(path.join(app, 'package.json'), 'utf8'));
    pkg.scripts.build = `sleep 15 && node build.js ${MARKER}`;
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify(pkg, null, 2));
    fs.writeFileSync(
      path.join(app, 'server.js'),
      fs.readFileSync(path.join(app, 'server.js'), 'utf8').replace('res.end(`$', 'res.end(`v2 $'),
    );
    await git(['commit', '-q', '-am', 'slow build'], app);
    const second = (await git(['rev-parse', 'HEAD'], app)).stdout.trim();
    await git(['push', '-q', remote, 'HEAD:refs/heads/main'], app);
    await eventually(
      () =>
        exec('pgrep', ['-f', `sleep 15 && node build.js ${MARKER}`]).then(
          (r) => r.stdout.trim(),
          () => '',
        ),
      (pids) => pids !== '',
      240_000,
    );

    // Probe the live app every 200 ms (bounded) from just before the kill until after the restart.
    const probes: { at: number; ok: boolean; status: number | string }[] = [];
    let probing = true;
    const prober = (async () => {
      for (let i = 0; i < 3000 && probing; i++) {
        const at = Date.now();
        const r = await httpGet(ingress, host).then(
          (res) => ({ ok: res.status === 200 && res.body.startsWith('hello v1'), status: res.status }),
          (err: Error) => ({ ok: false, status: err.message }),
        );
        probes.push({ at, ...r });
        await sleep(200);
      }
    })();
    await sleep(1000);

    const daemonsBefore = pidFiles(dataDir);
    expect(Object.keys(daemonsBefore).sort()).toEqual(DAEMONS);
    const killedAt = Date.now();
    process.kill(-(serve.child.pid as number), 'SIGKILL');
    await serve.exited;
    // The daemons live on in their own process groups.
    for (const pid of Object.values(daemonsBefore)) expect(procStat(pid)?.state).not.toBe('Z');
    await sleep(2000);

    const restartAt = Date.now();
    serve = await startServe(dataDir, { env: { DEPLOY_MCP_SECRET_KEY: secretKey }, ports: serve.ports });
    const readyAt = Date.now();
    await client.close();
    // The same key works on the restarted server.
    client = await connectClient(`${serve.env.DEPLOY_MCP_PUBLIC_URL}/mcp`, apiKey);
    // The same daemons, adopted.
    expect(pidFiles(dataDir)).toEqual(daemonsBefore);
    expect(serve.output()).toMatch(/"adopted":\["registry","buildkitd","podman","traefik"\]/);
    expect(serve.output()).toContain('temporal dev server adopted');
    await sleep(5000);
    probing = false;
    await prober;

    const failures = probes.filter((p) => !p.ok);
    let longestGap = 0;
    const okTimes = probes.filter((p) => p.ok).map((p) => p.at);
    for (let i = 1; i < okTimes.length; i++)
      longestGap = Math.max(longestGap, (okTimes[i] as number) - (okTimes[i - 1] as number));
    console.info(
      `crash-restart: restart ready in ${readyAt - restartAt} ms (${readyAt - killedAt} ms after kill -9); ` +
        `${probes.length} probes, ${failures.length} failed, longest gap between answers ${longestGap} ms`,
    );
    expect(failures).toEqual([]);
    expect(probes.length).toBeGreaterThan(20);
    expect(longestGap).toBeLessThan(2000);

    // The interrupted deploy completes on the restarted server (or ends with a clear status).
    const view = await eventually(
      service,
      (v) => v.deployment?.commit === second && !IN_FLIGHT_STATUSES.includes(v.deployment.status),
      360_000,
    );
    if (view.deployment?.status === 'active') {
      expect((await httpGet(ingress, host)).body).toMatch(/^v2 hello v1/);
    } else {
      expect(view.deployment, JSON.stringify(view)).toMatchObject({ status: 'failed' });
      expect(view.deployment?.reason).toBeTruthy();
    }
    console.info(`crash-restart: interrupted deploy ended ${JSON.stringify(view.deployment)}`);

    // A clean stop leaves no daemon of this data dir behind.
    const daemonsAfter = pidFiles(dataDir);
    await serve.stop();
    for (const pid of Object.values(daemonsAfter))
      expect(procStat(pid)?.state ?? 'gone').toMatch(/^(gone|Z)$/);
    expect(pidFiles(dataDir)).toEqual({});
    expect(processesUnder(dataDir)).toEqual([]);
  });
});
