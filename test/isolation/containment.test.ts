import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILD_SUBNET } from '../../core/daemons/buildkit.ts';
import { APPS_SUBNET_POOL } from '../../core/daemons/podman.ts';
import { openDatabase } from '../../core/db/client.ts';
import { listEgressRules } from '../../core/network/egress.ts';
import { agentGit, pushNewRepo } from '../support/git.ts';
import { httpGet } from '../support/http.ts';
import { call, text } from '../support/mcp.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';
import { connectAgent, type ServeProcess, startServe } from '../support/serve.ts';

const exec = promisify(execFile);

type Target = { name: string; host: string; port: number };
type ServiceView = {
  status: string;
  url: string | null;
  deployment: { status: string; reason: string | null; build_log: { lines: string[] } } | null;
};

/**
 * Attacks a hostile tenant can make from its repo, its build steps and its running app, each
 * of which reached the host or another tenant before issue 9. Every probe goes to an address
 * of this machine only: its own interfaces and the containers this test deploys.
 */
describe('containment: a hostile tenant reaches nothing of the product, the host or other tenants', () => {
  const work = scratchDir('containment', path.join(repoRoot, '.data', 'test'));
  const dataDir = path.join(work.dir, 'data');
  let serve: ServeProcess;
  let victim: Client;
  let attacker: Client;
  let victimContainerIp = '';
  let targets: Target[] = [];
  const remotes = new Map<string, string>();

  async function deploy(client: Client, home: string, name: string, files: string, env = {}) {
    const git = agentGit(path.join(work.dir, home));
    fs.mkdirSync(path.join(work.dir, home), { recursive: true });
    const repo = await call(client, 'create_repo', { name });
    const remote = (repo.structuredContent as { git_remote: string }).git_remote;
    remotes.set(name, remote);
    const dir = path.join(work.dir, home, name);
    fs.cpSync(files, dir, { recursive: true, verbatimSymlinks: true });
    await pushNewRepo(git, dir, remote);
    const res = await call(client, 'create_service', { name, repo: name, env_vars: env });
    if (res.isError) throw new Error(text(res));
    return waitForOutcome(client, name);
  }

  async function waitForOutcome(client: Client, name: string): Promise<ServiceView> {
    const deadline = Date.now() + 240_000;
    for (;;) {
      const view = (await call(client, 'get_service', { name, deploy_log_lines: 500 }))
        .structuredContent as ServiceView;
      const done = view.deployment?.status === 'active' || view.deployment?.status === 'failed';
      if (done || Date.now() > deadline) return view;
      await sleep(1000);
    }
  }

  beforeAll(async () => {
    serve = await startServe(dataDir);
    victim = await connectAgent(serve, 'victim@example.com');
    attacker = await connectAgent(serve, 'attacker@example.com');
    const victimView = await deploy(
      victim,
      'victim',
      'shop',
      path.join(repoRoot, 'test/fixtures/apps/probe-app'),
    );
    expect(victimView.status, `${JSON.stringify(victimView)}\n${serve.output().slice(-4000)}`).toBe('active');
    victimContainerIp = await containerIp('victim@example.com');
    targets = [
      ...productTargets(serve, temporalHttpPort(dataDir)),
      { name: 'victim-app', host: victimContainerIp, port: 3000 },
    ];
  }, 400_000);

  afterAll(async () => {
    // Every service this test made goes, with its containers and network.
    for (const client of [victim, attacker]) {
      if (!client) continue;
      const { services } = (await call(client, 'list_services')).structuredContent as {
        services: { name: string }[];
      };
      for (const { name } of services) await call(client, 'delete_service', { name }).catch(() => undefined);
    }
    await victim?.close();
    await attacker?.close();
    await serve?.stop();
    work.cleanup();
  });

  async function serviceIdOf(name: string): Promise<string> {
    const db = await openDatabase(`file:${path.join(dataDir, 'deploy-mcp.db')}`);
    try {
      return (await db.prisma.service.findFirstOrThrow({ where: { name, deletedAt: null } })).id;
    } finally {
      await db.close();
    }
  }

  async function containerIp(email: string): Promise<string> {
    const db = await openDatabase(`file:${path.join(dataDir, 'deploy-mcp.db')}`);
    try {
      const user = await db.prisma.user.findUniqueOrThrow({ where: { email } });
      const { stdout: ids } = await exec('podman', [
        'ps',
        '-q',
        '--filter',
        `label=deploy-mcp.user=${user.id}`,
      ]);
      const { stdout } = await exec('podman', [
        'inspect',
        ids.trim().split('\n')[0] ?? '',
        '--format',
        '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}',
      ]);
      return stdout.trim().split(' ')[0] ?? '';
    } finally {
      await db.close();
    }
  }

  /** The podman network of `email`'s containers. */
  async function nets(email: string): Promise<string> {
    const db = await openDatabase(`file:${path.join(dataDir, 'deploy-mcp.db')}`);
    try {
      const user = await db.prisma.user.findUniqueOrThrow({ where: { email } });
      const { stdout } = await exec('podman', [
        'ps',
        '--filter',
        `label=deploy-mcp.user=${user.id}`,
        '--format',
        '{{.Networks}}',
      ]);
      return stdout.trim();
    } finally {
      await db.close();
    }
  }

  it('build steps reach no service of the product, the host or another tenant; DNS still resolves', async () => {
    const view = await deploy(
      attacker,
      'attacker',
      'probe',
      path.join(repoRoot, 'test/fixtures/apps/probe-app'),
      {
        PROBE_TARGETS: JSON.stringify(targets),
      },
    );
    expect(view.status, JSON.stringify(view.deployment?.reason)).toBe('active');
    const lines = view.deployment?.build_log.lines ?? [];
    const probes = lines.filter((l) => / PROBE /.test(l));
    expect(probes.length, lines.join('\n')).toBe(targets.length);
    expect(probes.filter((l) => / REACHED$/.test(l))).toEqual([]);
    // No IPv6 address but loopback on the step's link (a link-local one reaches the host's `::`).
    expect(lines.filter((l) => / IPV6 /.test(l))).toEqual([]);
    expect(lines.some((l) => /DNS registry\.npmjs\.org RESOLVED/.test(l))).toBe(true);
    // Each step in a PID namespace of its own: it sees its shell, npm and node, nothing else.
    const procs = Number(lines.find((l) => / PROCS \d+$/.test(l))?.match(/PROCS (\d+)$/)?.[1]);
    expect(procs).toBeGreaterThan(0);
    expect(procs).toBeLessThan(10);
  }, 300_000);

  it('the app reaches no service of the product, the host or another tenant, and runs as a non-root user', async () => {
    const view = (await call(attacker, 'get_service', { name: 'probe' })).structuredContent as ServiceView;
    const host = new URL(view.url ?? '').hostname;
    // A listener of the test's on `::` of this machine, tried at the IPv6 link-local address of
    // the attacker network's bridge (past every IPv4 rule, were the app's link to have IPv6).
    const v6 = net.createServer((c) => c.end('hi\n'));
    await new Promise<void>((resolve) => v6.listen(0, '::', resolve));
    const bridgeLinkLocal = linkLocalOf(await bridgeOf(await nets('attacker@example.com')));
    const v6Port = (v6.address() as net.AddressInfo).port;
    const all = [
      ...targets,
      ...(bridgeLinkLocal
        ? [{ name: 'host-ipv6-link-local', host: `${bridgeLinkLocal}%eth0`, port: v6Port }]
        : []),
    ];
    const res = await httpGet(
      `http://127.0.0.1:${serve.ports.ingress}/probe?targets=${encodeURIComponent(JSON.stringify(all))}`,
      host,
    ).finally(() => v6.close());
    const lines = res.body.split('\n');
    expect(lines.filter((l) => l.startsWith('PROBE ')).length, res.body).toBe(all.length);
    expect(lines.filter((l) => l.endsWith(' REACHED'))).toEqual([]);
    // No IPv6 address but loopback in the app's namespace.
    expect(lines.filter((l) => l.startsWith('IPV6 '))).toEqual([]);
    expect(lines).toContain('DNS registry.npmjs.org RESOLVED');
    expect(lines).toContain('UID 10001');
    // No swap beyond the memory limit.
    const { stdout: limits } = await exec('podman', [
      'ps',
      '--filter',
      `label=deploy-mcp.service=${await serviceIdOf('probe')}`,
      '--format',
      '{{.ID}}',
    ]);
    const { stdout: memory } = await exec('podman', [
      'inspect',
      limits.trim().split('\n')[0] ?? '',
      '--format',
      '{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}',
    ]);
    const [mem, swap] = memory.trim().split(' ');
    expect(Number(mem)).toBe(512 * 1024 * 1024);
    expect(swap).toBe(mem);
    // Each tenant has a network of its own.
    expect(await containerIp('attacker@example.com')).not.toBe('');
    const [a, b] = [await nets('attacker@example.com'), await nets('victim@example.com')];
    expect(a).toMatch(/^dmcp-/);
    expect(b).toMatch(/^dmcp-/);
    expect(a).not.toBe(b);
  }, 60_000);

  it('egress rules deny every private range and the metadata endpoint, for builds and apps (read, not probed)', async () => {
    for (const [name, source] of [
      ['BUILD', BUILD_SUBNET],
      ['APPS', APPS_SUBNET_POOL.base],
    ] as const) {
      const rules = await listEgressRules(name);
      for (const range of ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16', '127.0.0.0/8'])
        expect(rules.forward).toContain(`-A DMCP-${name} -d ${range} -j DROP`);
      expect(rules.input).toContain(`-A DMCP-${name}-IN -p tcp -j REJECT --reject-with tcp-reset`);
      const { stdout: forward } = await exec('iptables', ['-t', 'mangle', '-S', 'FORWARD']);
      expect(forward).toContain(`-A FORWARD -s ${source} -j DMCP-${name}`);
      const { stdout: input } = await exec('iptables', ['-S', 'INPUT']);
      expect(input).toContain(`-A INPUT -s ${source} -j DMCP-${name}-IN`);
    }
  });

  it('a redeploy switches releases without a single failed request', async () => {
    const view = (await call(victim, 'get_service', { name: 'shop' })).structuredContent as ServiceView;
    const host = new URL(view.url ?? '').hostname;
    const dir = path.join(work.dir, 'victim', 'shop');
    const git = agentGit(path.join(work.dir, 'victim'));
    fs.writeFileSync(
      path.join(dir, 'server.js'),
      fs.readFileSync(path.join(dir, 'server.js'), 'utf8').replace("'probe app\\n'", "'probe app v2\\n'"),
    );
    await git(['commit', '-q', '-am', 'v2'], dir);
    await git(['push', '-q', remotes.get('shop') ?? '', 'HEAD:refs/heads/main'], dir);
    // Poll through Traefik until v2 answers (bounded: 4 minutes, 20 requests a second at most).
    const failures: string[] = [];
    let requests = 0;
    const deadline = Date.now() + 240_000;
    for (;;) {
      requests++;
      const res = await httpGet(`http://127.0.0.1:${serve.ports.ingress}/`, host).catch((e: Error) => ({
        status: 0,
        body: e.message,
      }));
      if (res.status !== 200) failures.push(`${res.status} ${res.body.slice(0, 80)}`);
      if (res.body === 'probe app v2\n' || Date.now() > deadline) break;
      await sleep(50);
    }
    expect(failures).toEqual([]);
    expect(requests).toBeGreaterThan(10);
    // The new release serves before its deployment is recorded as done.
    const done = await waitForOutcome(victim, 'shop');
    expect(done).toMatchObject({ status: 'active', deployment: { status: 'active' } });
  }, 300_000);

  it('a release that never served does not outlive its deployment (superseded while starting, then the newer one fails)', async () => {
    // v1 is healthy only after 8 s; v2 is pushed while v1 starts, and fails to build.
    const dir = fs.mkdtempSync(path.join(work.dir, 'slow-'));
    const git = agentGit(path.join(work.dir, 'attacker'));
    fs.writeFileSync(
      path.join(dir, 'package.json'),
      JSON.stringify({ name: 'slow', version: '1.0.0', scripts: { start: 'node server.js' } }),
    );
    fs.writeFileSync(
      path.join(dir, 'server.js'),
      "setTimeout(() => require('node:http').createServer((_q, s) => s.end('slow')).listen(process.env.PORT), 8000);\n",
    );
    const repo = await call(attacker, 'create_repo', { name: 'slow' });
    const remote = (repo.structuredContent as { git_remote: string }).git_remote;
    await pushNewRepo(git, dir, remote);
    const created = await call(attacker, 'create_service', { name: 'slow', repo: 'slow', wait: false });
    if (created.isError) throw new Error(text(created));
    const deadline = Date.now() + 120_000;
    let view = (await call(attacker, 'get_service', { name: 'slow' })).structuredContent as ServiceView;
    while (view.deployment?.status !== 'deploying' && Date.now() < deadline) {
      await sleep(200);
      view = (await call(attacker, 'get_service', { name: 'slow' })).structuredContent as ServiceView;
    }
    expect(view.deployment?.status).toBe('deploying');
    const pkg = { name: 'slow', version: '1.0.0', scripts: { build: 'exit 3', start: 'node server.js' } };
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify(pkg));
    await git(['commit', '-q', '-am', 'v2 fails to build'], dir);
    await git(['push', '-q', remote, 'HEAD:refs/heads/main'], dir);
    const serviceId = await serviceIdOf('slow');
    // Both deployments end; then no container of the service is left (it has no release).
    let containers: string[] = ['?'];
    while (Date.now() < deadline) {
      const all = (await call(attacker, 'list_deployments', { name: 'slow' })).structuredContent as {
        deployments: { status: string }[];
      };
      const { stdout } = await exec('podman', [
        'ps',
        '-aq',
        '--filter',
        `label=deploy-mcp.service=${serviceId}`,
      ]);
      containers = stdout.split('\n').filter(Boolean);
      const ended =
        all.deployments.length === 2 &&
        all.deployments.every((d) => !['queued', 'building', 'deploying'].includes(d.status));
      if (ended && containers.length === 0) break;
      await sleep(500);
    }
    const all = (await call(attacker, 'list_deployments', { name: 'slow' })).structuredContent as {
      deployments: { status: string }[];
    };
    expect(all.deployments.map((d) => d.status).sort()).toEqual(['failed', 'superseded']);
    expect(containers).toEqual([]);
  }, 180_000);

  describe('a repo cannot make the worker read or write files outside it', () => {
    const secretKey = () => fs.readFileSync(path.join(dataDir, 'secret.key'), 'utf8').trim();

    it.each([
      ['the master key', 'Dockerfile', () => path.join(dataDir, 'secret.key'), 'dockerfile'],
      ['/etc/passwd', 'package.json', () => '/etc/passwd', 'railpack'],
      ['/proc/self/environ', 'package.json', () => '/proc/self/environ', 'railpack'],
    ])(
      'a link to %s fails the build naming the link, and nothing of the file is echoed',
      async (_what, file, target, pack) => {
        const dir = fs.mkdtempSync(path.join(work.dir, 'symlink-'));
        fs.writeFileSync(path.join(dir, 'index.html'), '<p>hi</p>');
        fs.symlinkSync(target(), path.join(dir, file));
        const name = `sym-${path.basename(dir).slice(-6).toLowerCase()}`;
        const git = agentGit(path.join(work.dir, 'attacker'));
        const repo = await call(attacker, 'create_repo', { name });
        await pushNewRepo(git, dir, (repo.structuredContent as { git_remote: string }).git_remote);
        const res = await call(attacker, 'create_service', { name, repo: name, build_pack: pack });
        if (res.isError) throw new Error(text(res));
        const view = await waitForOutcome(attacker, name);
        expect(view.deployment?.status).toBe('failed');
        expect(view.deployment?.reason).toContain(`symbolic link ${file} points outside the repository`);
        const shown = JSON.stringify(view);
        expect(shown).not.toContain(secretKey());
        expect(shown).not.toMatch(/root:x:0:0|DEPLOY_MCP_|PATH=/);
      },
      120_000,
    );

    it('a dangling .dockerignore link does not make the worker create its target', async () => {
      const outside = path.join(os.tmpdir(), `created-by-worker-${process.pid}-${Date.now()}`);
      const dir = fs.mkdtempSync(path.join(work.dir, 'symlink-'));
      fs.writeFileSync(path.join(dir, 'index.html'), '<p>hi</p>');
      fs.symlinkSync(outside, path.join(dir, '.dockerignore'));
      const git = agentGit(path.join(work.dir, 'attacker'));
      const repo = await call(attacker, 'create_repo', { name: 'dangling' });
      await pushNewRepo(git, dir, (repo.structuredContent as { git_remote: string }).git_remote);
      await call(attacker, 'create_service', { name: 'dangling', repo: 'dangling' });
      const view = await waitForOutcome(attacker, 'dangling');
      expect(view.deployment?.reason).toContain('symbolic link .dockerignore points outside the repository');
      expect(fs.existsSync(outside)).toBe(false);
    }, 120_000);
  });
});

/** Every service of the product on every IPv4 address of this machine (loopback included). */
function productTargets(serve: ServeProcess, temporalHttp: number | undefined): Target[] {
  const ports: [string, number | undefined][] = [
    ['mcp', serve.ports.server],
    ['deployer', serve.ports.deployer],
    ['registry', serve.ports.registry],
    ['temporal', serve.ports.temporal],
    ['temporal-http', temporalHttp],
    ['traefik', serve.ports.ingress],
  ];
  const addresses = Object.values(os.networkInterfaces())
    .flat()
    .filter((a) => a?.family === 'IPv4')
    .map((a) => a?.address as string);
  return [...new Set(addresses)].flatMap((host) =>
    ports.flatMap(([name, port]) => (port ? [{ name, host, port }] : [])),
  );
}

/** The HTTP API port of the Temporal dev server that serves `dataDir` (from its command line). */
function temporalHttpPort(dataDir: string): number | undefined {
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let cmd: string[];
    try {
      cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (!cmd.includes('start-dev') || !cmd.some((a) => a.startsWith(dataDir))) continue;
    const i = cmd.indexOf('--http-port');
    if (i >= 0) return Number(cmd[i + 1]);
  }
  return undefined;
}

/** The host bridge of a podman network. */
async function bridgeOf(network: string): Promise<string> {
  const { stdout } = await exec('podman', [
    'network',
    'inspect',
    network,
    '--format',
    '{{.NetworkInterface}}',
  ]);
  return stdout.trim();
}

/** An interface's IPv6 link-local address (none where the host has IPv6 off). */
function linkLocalOf(iface: string): string | undefined {
  return os.networkInterfaces()[iface]?.find((a) => a.family === 'IPv6' && a.address.startsWith('fe80:'))
    ?.address;
}
