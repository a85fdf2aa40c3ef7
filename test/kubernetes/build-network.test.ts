import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CACHE_DIR } from '../../core/cluster/cluster.ts';
import { containerdPaths, ctr } from '../../core/cluster/containerd.ts';
import { clusterLayout } from '../../core/cluster/layout.ts';
import { freePort, tcpOpen } from '../../core/daemons/probes.ts';
import {
  buildStepEgressScript,
  CLUSTER_BUILD_NETWORK,
  CLUSTER_BUILD_POLICY,
  CLUSTER_BUILD_SUBNET,
} from '../../platform/cluster/buildkit.ts';
import { staleStepRulesScript } from '../../platform/cluster/buildkit-start.ts';
import { importPlatformImages } from '../../platform/local/images.ts';
import type { ClusterLayerOutputs, ClusterLayerStack } from '../../platform/local/stack.ts';
import { ALL_POOLS, POOL_LABEL } from '../../platform/pools.ts';
import { kubectl, oneNodeLayer, type TestCluster, useTestCluster } from '../support/cluster.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';

const exec = promisify(execFile);
const BIN = path.join(repoRoot, '.tools/bin');

/**
 * The step's probe (bash's /dev/tcp, each attempt bounded by `timeout`): one line per target,
 * `<name> REACHED|BLOCKED`; "gateway" is the step's default gateway, read from its routing table.
 */
const SUBNET_PREFIX = CLUSTER_BUILD_SUBNET.split('.').slice(0, 2).join('.');
const PROBE = `#!/bin/bash
g=
while read -r _ dest gw _; do [ "$dest" = 00000000 ] && g=$gw; done < /proc/net/route
gateway=$(printf '%d.%d.%d.%d' 0x\${g:6:2} 0x\${g:4:2} 0x\${g:2:2} 0x\${g:0:2})
echo "GATEWAY $gateway" > /out/result
# Interfaces with an IPv6 address, loopback aside (a link-local one reaches the other end of the link).
v6=
if [ -r /proc/net/if_inet6 ]; then
  while read -r _ _ _ _ _ dev; do [ "$dev" = lo ] || v6="$v6 $dev"; done < /proc/net/if_inet6
fi
echo "IPV6\${v6:- none}" > /out/ipv6
for t in "$@"; do
  name=\${t%%=*}; addr=\${t#*=}; host=\${addr%:*}; port=\${addr##*:}
  if [ "$host" = gateway ]; then
    # Only a gateway of the step range, i.e. the host's end of the step's link; never one outside.
    case $gateway in ${SUBNET_PREFIX}.*) host=$gateway ;; *) echo "$name SKIPPED" >> /out/result; continue ;; esac
  fi
  if timeout 10 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null; then r=REACHED; else r=BLOCKED; fi
  echo "$name $r" >> /out/result
done
`;

/** bash and timeout with their shared libraries, as a root filesystem for a FROM scratch stage. */
async function probeRootfs(dir: string) {
  const files = ['/bin/bash', '/usr/bin/timeout'];
  for (const bin of [...files]) {
    const { stdout } = await exec('ldd', [bin]);
    files.push(...[...stdout.matchAll(/(?:=>\s*)?(\/\S+)\s+\(0x/g)].map((m) => m[1] as string));
  }
  for (const f of new Set(files)) {
    const to = path.join(dir, f);
    fs.mkdirSync(path.dirname(to), { recursive: true });
    fs.copyFileSync(fs.realpathSync(f), to);
    fs.chmodSync(to, 0o755);
  }
  fs.writeFileSync(path.join(dir, 'probe.sh'), PROBE, { mode: 0o755 });
  fs.mkdirSync(path.join(dir, 'out'));
  fs.writeFileSync(path.join(dir, 'out', '.keep'), '');
}

/** A TCP listener of the test's own that counts the connections it accepts. */
async function listener(host: string): Promise<{ port: number; accepted: () => number; close: () => void }> {
  let count = 0;
  const server = net.createServer((s) => {
    count++;
    s.end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    accepted: () => count,
    close: () => server.close(),
  };
}

/**
 * Issue 13: build steps of the in-cluster BuildKit are contained like the product's own. On a
 * one-node cluster of its own, the layer (no deployer) goes up; a build through its BuildKit
 * runs a step that tries listeners the test made on the host's loopback and on the node's
 * address, the step's gateway (the host), the registry's and BuildKit's ports: all refused. The
 * same step reaches a listener at an address outside every denied range, in a network
 * namespace the test makes after the layer is up (a stand-in for the public internet that
 * never leaves the machine). The rules towards the rest (169.254.0.0/16, private ranges) are
 * read, not probed. A buildkitd killed and restarted leaves none of its steps' masquerading
 * rules; and a copy of the BuildKit pod on the pod network (as in production) keeps its steps
 * off its node's address.
 */
describe('build steps of the in-cluster BuildKit, in network namespaces of their own', () => {
  const work = scratchDir('k8s-buildnet', path.join(repoRoot, '.data', 'test'));
  const ns = `dmcp-bn-${process.pid}`;
  const veth = `dbn${process.pid % 100000}`;
  // Documentation range (RFC 5737): in no denied range, routed only to the test's namespace here.
  const outside = { host: '198.51.100.1', peer: '198.51.100.2' };
  let cluster: TestCluster;
  let layer: ClusterLayerStack | undefined;
  let outputs: ClusterLayerOutputs;
  let ports: { web: number; websecure: number; registry: number; buildkit: number };
  let outsideServer: ChildProcess | undefined;
  const listeners: Awaited<ReturnType<typeof listener>>[] = [];
  const figures: Record<string, number> = {};
  // The pod-network BuildKit's namespace (the last test's).
  const podNetNs = `dmcp-bn-podnet-${process.pid}`;
  // A masquerading rule as the product's own buildkitd's steps (10.213.0.0/16, network
  // deploy-mcp-build) have them on this host: a restarted in-cluster buildkitd leaves it alone.
  const decoyChain = `CNI-dmcpbntest${process.pid % 1_000_000}`;
  const decoyComment = `name: "deploy-mcp-build" id: "bn-test-${process.pid}"`;
  const decoyJump = ['-s', '10.213.255.254/32', '-m', 'comment', '--comment', decoyComment, '-j', decoyChain];
  const buildkitPod = async () =>
    JSON.parse(await admin(['-n', 'deploy-mcp-system', 'get', 'pods', '-l', 'app=buildkitd', '-o', 'json']))
      .items as {
      metadata: { name: string };
      status: {
        hostIP?: string;
        hostIPs?: { ip: string }[];
        containerStatuses?: { containerID?: string; restartCount: number; ready: boolean }[];
      };
    }[];
  const admin = (args: string[]) => kubectl(cluster, args);
  /** A build of `context`'s Dockerfile through the layer's BuildKit, its result in `out` (uncached: a fresh NONCE). */
  const build = (context: string, out: string, address = outputs.buildkitAddress) =>
    exec(
      path.join(BIN, 'buildctl'),
      [
        '--addr',
        address,
        'build',
        '--frontend',
        'dockerfile.v0',
        '--local',
        `context=${context}`,
        '--local',
        `dockerfile=${context}`,
        '--opt',
        `build-arg:NONCE=${randomBytes(8).toString('hex')}`,
        '--output',
        `type=local,dest=${out}`,
      ],
      { timeout: 240_000 },
    );

  beforeAll(async () => {
    ports = {
      web: await freePort(),
      websecure: await freePort(),
      registry: await freePort(),
      buildkit: await freePort(),
    };
    cluster = await useTestCluster({
      dir: path.join(work.dir, 'cluster'),
      registries: [`127.0.0.1:${ports.registry}`],
      ingress: false,
    });
    await admin(['label', 'node', 'localhost', `${POOL_LABEL}=${ALL_POOLS}`, '--overwrite']);
    const images = await importPlatformImages({
      binDir: BIN,
      cacheDir: DEFAULT_CACHE_DIR,
      clusterDir: path.join(work.dir, 'cluster'),
    });
    layer = await oneNodeLayer({
      cluster,
      dir: work.dir,
      ports,
      config: { images: { ...images, deployer: 'unused' }, certManager: false, deployer: false },
    });
    const t = Date.now();
    outputs = await layer.up();
    figures.upMs = Date.now() - t;
    // The allowed side, made after `up` (the layer denies the networks the node sits on then).
    await exec('ip', ['netns', 'add', ns]);
    await exec('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', `${veth}p`]);
    await exec('ip', ['link', 'set', `${veth}p`, 'netns', ns]);
    await exec('ip', ['addr', 'add', `${outside.host}/30`, 'dev', veth]);
    await exec('ip', ['link', 'set', veth, 'up']);
    await exec('ip', ['-n', ns, 'addr', 'add', `${outside.peer}/30`, 'dev', `${veth}p`]);
    await exec('ip', ['-n', ns, 'link', 'set', `${veth}p`, 'up']);
    await exec('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  }, 600_000);

  afterAll(async () => {
    for (const l of listeners) l.close();
    if (outsideServer?.pid) process.kill(outsideServer.pid);
    await exec('ip', ['link', 'del', veth]).catch(() => undefined);
    await exec('ip', ['netns', 'del', ns]).catch(() => undefined);
    await admin([
      'delete',
      'namespace',
      podNetNs,
      '--ignore-not-found',
      '--wait=true',
      '--timeout=120s',
    ]).catch(() => undefined);
    if (layer) await layer.destroy().catch(() => undefined);
    await cluster?.release();
    // The layer's rules on this host (its BuildKit ran on the host network): jumps, then chains.
    const chain = `DMCP-${CLUSTER_BUILD_POLICY}`;
    for (const [table, builtin, target] of [
      ['mangle', 'FORWARD', chain],
      ['filter', 'INPUT', `${chain}-IN`],
    ] as const) {
      await exec('iptables', ['-t', table, '-D', builtin, '-s', CLUSTER_BUILD_SUBNET, '-j', target]).catch(
        () => undefined,
      );
      await exec('iptables', ['-t', table, '-F', target]).catch(() => undefined);
      await exec('iptables', ['-t', table, '-X', target]).catch(() => undefined);
    }
    // The masquerading rules of the steps of the layer's buildkitd (host network) that a killed one
    // left, should the restart test have failed: removed by the same script its start runs.
    await exec('sh', ['-c', staleStepRulesScript(CLUSTER_BUILD_NETWORK, CLUSTER_BUILD_SUBNET)]).catch(
      (err: Error) => console.log('build-network: the steps masquerading rules stay:', err.message),
    );
    // The stand-in for a rule of the product's own build range (the restart test's).
    await exec('iptables', ['-t', 'nat', '-D', 'POSTROUTING', ...decoyJump]).catch(() => undefined);
    await exec('iptables', ['-t', 'nat', '-F', decoyChain]).catch(() => undefined);
    await exec('iptables', ['-t', 'nat', '-X', decoyChain]).catch(() => undefined);
    console.log('build-network figures:', JSON.stringify(figures));
    work.cleanup();
  }, 300_000);

  it('a step reaches none of the host, the node, the registry or BuildKit, and does reach an address outside the denied ranges', async () => {
    const loopback = await listener('127.0.0.1');
    const anyAddress = await listener('0.0.0.0');
    listeners.push(loopback, anyAddress);
    // The node's own address: the source of its default route (no packet is sent to find it),
    // else any address of its own outside loopback.
    const { stdout: route } = await exec('ip', ['-4', 'route', 'get', '192.0.2.200']).catch(() => ({
      stdout: '',
    }));
    const nodeAddress =
      route.match(/\bsrc (\S+)/)?.[1] ??
      Object.values(os.networkInterfaces())
        .flat()
        .find((a) => a && a.family === 'IPv4' && !a.internal)?.address ??
      '';
    expect(nodeAddress).not.toBe('');
    // The allowed listener, in the test's namespace (bounded wait until it listens).
    const outsidePort = await freePort();
    outsideServer = spawn(
      'ip',
      [
        'netns',
        'exec',
        ns,
        process.execPath,
        '-e',
        `require('node:net').createServer((s) => s.end()).listen(${outsidePort}, '${outside.peer}')`,
      ],
      { stdio: 'ignore' },
    );
    for (let i = 0; i < 100 && !(await tcpOpen(outside.peer, outsidePort, 300)); i++) await sleep(100);
    expect(await tcpOpen(outside.peer, outsidePort, 1000)).toBe(true);

    const targets = {
      loopback: `127.0.0.1:${loopback.port}`,
      node: `${nodeAddress}:${anyAddress.port}`,
      gateway: `gateway:${anyAddress.port}`,
      registry: `127.0.0.1:${ports.registry}`,
      buildkit: `127.0.0.1:${ports.buildkit}`,
      outside: `${outside.peer}:${outsidePort}`,
    };
    const context = path.join(work.dir, 'context');
    await probeRootfs(path.join(context, 'rootfs'));
    fs.writeFileSync(
      path.join(context, 'Dockerfile'),
      [
        'FROM scratch AS probe',
        'COPY rootfs/ /',
        'ARG NONCE',
        `RUN ["/bin/bash", "/probe.sh", ${Object.entries(targets)
          .map(([k, v]) => JSON.stringify(`${k}=${v}`))
          .join(', ')}]`,
        'FROM scratch',
        'COPY --from=probe /out/ /',
        '',
      ].join('\n'),
    );
    const out = path.join(work.dir, 'out');
    const t = Date.now();
    await build(context, out);
    figures.buildMs = Date.now() - t;
    const result = fs.readFileSync(path.join(out, 'result'), 'utf8').trim().split('\n');
    // No IPv6 on the step's link: nothing of the host (or pod) reachable over link-local either.
    expect(fs.readFileSync(path.join(out, 'ipv6'), 'utf8').trim()).toBe('IPV6 none');
    // The step's own network: its gateway is the host end of its link, in the step range.
    const gateway = result[0]?.replace(/^GATEWAY /, '') ?? '';
    expect(gateway.startsWith(`${SUBNET_PREFIX}.`), result.join('\n')).toBe(true);
    expect(Object.fromEntries(result.slice(1).map((l) => l.split(' ')))).toEqual({
      loopback: 'BLOCKED',
      node: 'BLOCKED',
      gateway: 'BLOCKED',
      registry: 'BLOCKED',
      buildkit: 'BLOCKED',
      outside: 'REACHED',
    });
    // Nothing got through to the host's listeners.
    expect([loopback.accepted(), anyAddress.accepted()]).toEqual([0, 0]);
  }, 300_000);

  it('runs each of several steps in a namespace of the step range (and times them)', async () => {
    const context = path.join(work.dir, 'context-steps');
    await probeRootfs(path.join(context, 'rootfs'));
    const steps = 5;
    fs.writeFileSync(
      path.join(context, 'Dockerfile'),
      [
        'FROM scratch AS steps',
        'COPY rootfs/ /',
        'ARG NONCE',
        // Each step appends its gateway (the host end of its own link) to the result.
        ...Array.from(
          { length: steps },
          () =>
            'RUN ["/bin/bash", "/probe.sh"]\nRUN ["/bin/bash", "-c", "echo \\"$(</out/result)\\" >> /out/all"]',
        ),
        'FROM scratch',
        'COPY --from=steps /out/ /',
        '',
      ].join('\n'),
    );
    const out = path.join(work.dir, 'out-steps');
    const t = Date.now();
    await build(context, out);
    figures.stepsBuildMs = Date.now() - t;
    const gateways = fs.readFileSync(path.join(out, 'all'), 'utf8').trim().split('\n');
    expect(gateways).toHaveLength(steps);
    for (const g of gateways)
      expect(g, gateways.join('\n')).toMatch(new RegExp(`^GATEWAY ${SUBNET_PREFIX.replace('.', '\\.')}\\.`));
  }, 300_000);

  it('the egress rules on the node deny the private, loopback and link-local ranges (read, not probed), each jump once', async () => {
    const chain = `DMCP-${CLUSTER_BUILD_POLICY}`;
    const { stdout: forward } = await exec('iptables', ['-t', 'mangle', '-S', chain]);
    for (const range of ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16', '127.0.0.0/8'])
      expect(forward).toContain(`-A ${chain} -d ${range} -j DROP`);
    const { stdout: input } = await exec('iptables', ['-S', `${chain}-IN`]);
    expect(input).toContain(`-A ${chain}-IN -p tcp -j REJECT --reject-with tcp-reset`);
    const jumps = async (table: string, builtin: string, target: string) =>
      (await exec('iptables', ['-t', table, '-S', builtin])).stdout
        .split('\n')
        .filter((l) => l === `-A ${builtin} -s ${CLUSTER_BUILD_SUBNET} -j ${target}`).length;
    // The node's own addresses, as its pod sees them (the downward API): dropped too.
    const [bk] = await buildkitPod();
    const hostIPs = [bk?.status.hostIP, ...(bk?.status.hostIPs ?? []).map((a) => a.ip)].filter(
      (a): a is string => !!a && net.isIPv4(a),
    );
    expect(hostIPs.length).toBeGreaterThan(0);
    for (const ip of hostIPs) expect(forward).toContain(`-A ${chain} -d ${ip}/32 -j DROP`);
    expect(await jumps('mangle', 'FORWARD', chain)).toBe(1);
    expect(await jumps('filter', 'INPUT', `${chain}-IN`)).toBe(1);
    // The init container that set them may change the firewall and nothing else.
    const pod = JSON.parse(
      await admin(['-n', 'deploy-mcp-system', 'get', 'pods', '-l', 'app=buildkitd', '-o', 'json']),
    ).items[0];
    expect(pod.spec.initContainers.map((c: { securityContext: unknown }) => c.securityContext)).toEqual([
      { capabilities: { drop: ['ALL'], add: ['NET_ADMIN'] } },
    ]);
  }, 60_000);

  it("a killed buildkitd leaves none of its steps' masquerading rules once restarted (other ranges' kept), and builds again", async () => {
    const nat = async () => (await exec('iptables', ['-t', 'nat', '-S'])).stdout.trim().split('\n');
    const ours = (l: string) => l.includes(`name: \\"${CLUSTER_BUILD_NETWORK}\\"`);
    const idsOf = (lines: string[]) =>
      new Set(lines.filter(ours).map((l) => l.match(/ id: \\"([^\\"]+)\\"/)?.[1] ?? l));
    await exec('iptables', ['-t', 'nat', '-N', decoyChain]);
    await exec('iptables', [
      '-t',
      'nat',
      '-A',
      decoyChain,
      '-m',
      'comment',
      '--comment',
      decoyComment,
      '-j',
      'MASQUERADE',
    ]);
    await exec('iptables', ['-t', 'nat', '-A', 'POSTROUTING', ...decoyJump]);
    const decoy = (lines: string[]) =>
      lines.filter((l) => l.includes(`bn-test-${process.pid}`) || l.includes(decoyChain));
    // The steps' namespaces of the builds above and BuildKit's pool: one masquerading rule set each.
    const before = await nat();
    const killed = idsOf(before);
    expect(killed.size).toBeGreaterThan(0);
    expect(decoy(before)).toHaveLength(3);
    const [pod] = await buildkitPod();
    const status = pod?.status.containerStatuses?.[0];
    const restarts = status?.restartCount ?? 0;
    const containerId = status?.containerID?.replace(/^containerd:\/\//, '') ?? '';
    expect(containerId).not.toBe('');
    // Kill buildkitd (the container's process; no CNI DEL is made): kubelet restarts the container.
    const socket = containerdPaths(clusterLayout(path.join(work.dir, 'cluster')).containerd).socket;
    const t = Date.now();
    await ctr(socket, ['tasks', 'kill', '--signal', 'SIGKILL', containerId]);
    let restarted = false;
    for (let i = 0; i < 120 && !restarted; i++) {
      const s = (await buildkitPod())[0]?.status.containerStatuses?.[0];
      restarted = !!s && s.restartCount > restarts && s.ready;
      if (!restarted) await sleep(1000);
    }
    expect(restarted).toBe(true);
    figures.restartMs = Date.now() - t;
    // The steps of a build after the restart: in the step range, as before.
    const context = path.join(work.dir, 'context-restart');
    await probeRootfs(path.join(context, 'rootfs'));
    fs.writeFileSync(
      path.join(context, 'Dockerfile'),
      [
        'FROM scratch AS probe',
        'COPY rootfs/ /',
        'ARG NONCE',
        'RUN ["/bin/bash", "/probe.sh"]',
        'FROM scratch',
        'COPY --from=probe /out/ /',
        '',
      ].join('\n'),
    );
    const out = path.join(work.dir, 'out-restart');
    await build(context, out);
    expect(fs.readFileSync(path.join(out, 'result'), 'utf8')).toMatch(
      new RegExp(`^GATEWAY ${SUBNET_PREFIX.replace('.', '\\.')}\\.`),
    );
    // None of the killed daemon's rules is left; the new daemon's are there; the other range's unchanged.
    const after = await nat();
    const left = [...idsOf(after)].filter((id) => killed.has(id));
    expect(left, after.filter(ours).join('\n')).toEqual([]);
    expect(idsOf(after).size).toBeGreaterThan(0);
    expect(decoy(after)).toEqual(decoy(before));
    const log = await admin(['-n', 'deploy-mcp-system', 'logs', pod?.metadata.name ?? '', '-c', 'buildkitd']);
    expect(log).toContain(`removed the masquerading rules of ${CLUSTER_BUILD_NETWORK}`);
    // The IPAM leases are the container's own (no volume): none of the killed daemon's ids.
    const leases = await admin([
      '-n',
      'deploy-mcp-system',
      'exec',
      pod?.metadata.name ?? '',
      '-c',
      'buildkitd',
      '--',
      '/bin/sh',
      '-c',
      `for f in /var/lib/cni/networks/${CLUSTER_BUILD_NETWORK}/10.*; do read -r id < "$f"; echo "$id"; done`,
    ]);
    const leaseIds = leases.replace(/\r/g, '').trim().split('\n').filter(Boolean);
    expect(leaseIds.length).toBeGreaterThan(0);
    expect(leaseIds.filter((id) => killed.has(id))).toEqual([]);
  }, 300_000);

  it("on the pod network (as in production, with production's rules), a step reaches no listener on its node's address (the pod's status.hostIP), and does reach outside", async () => {
    // The layer's BuildKit pod, moved to the pod network in a namespace of the test's own: its
    // ConfigMap with the rules production gets (no rule of this machine's networks, only the node
    // address the downward API gives), buildkitd on 0.0.0.0, its state in an emptyDir.
    const live = JSON.parse(
      await admin(['-n', 'deploy-mcp-system', 'get', 'deployment', 'buildkitd', '-o', 'json']),
    );
    const config = JSON.parse(
      await admin(['-n', 'deploy-mcp-system', 'get', 'configmap', 'buildkitd-config', '-o', 'json']),
    );
    const template = live.spec.template;
    const spec = template.spec;
    delete spec.hostNetwork;
    const [container] = spec.containers;
    container.args = ['--config', '/etc/buildkit/buildkitd.toml', '--addr', 'tcp://0.0.0.0:1234'];
    container.ports = [{ name: 'buildkit', containerPort: 1234 }];
    container.readinessProbe = { tcpSocket: { port: 1234 } };
    spec.volumes = spec.volumes.map((v: { name: string }) =>
      v.name === 'state' ? { name: 'state', emptyDir: {} } : v,
    );
    const items = [
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: podNetNs } },
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'buildkitd-config', namespace: podNetNs },
        data: { ...config.data, 'egress.sh': buildStepEgressScript(undefined, []) },
      },
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'buildkitd', namespace: podNetNs },
        spec: { replicas: 1, strategy: { type: 'Recreate' }, selector: live.spec.selector, template },
      },
    ];
    await kubectl(cluster, ['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));
    let pod:
      | { status: { podIP?: string; hostIP?: string; containerStatuses?: { ready: boolean }[] } }
      | undefined;
    for (let i = 0; i < 180; i++) {
      pod = JSON.parse(await admin(['-n', podNetNs, 'get', 'pods', '-o', 'json'])).items[0];
      if (pod?.status.podIP && pod.status.containerStatuses?.[0]?.ready) break;
      await sleep(1000);
    }
    const podIP = pod?.status.podIP ?? '';
    const hostIP = pod?.status.hostIP ?? '';
    expect(pod?.status.containerStatuses?.[0]?.ready).toBe(true);
    expect(podIP).not.toBe(hostIP);
    const node = await listener('0.0.0.0');
    listeners.push(node);
    const outsidePort = await freePort();
    const outsideListener = spawn(
      'ip',
      [
        'netns',
        'exec',
        ns,
        process.execPath,
        '-e',
        `require('node:net').createServer((s) => s.end()).listen(${outsidePort}, '${outside.peer}')`,
      ],
      { stdio: 'ignore' },
    );
    try {
      for (let i = 0; i < 100 && !(await tcpOpen(outside.peer, outsidePort, 300)); i++) await sleep(100);
      const context = path.join(work.dir, 'context-podnet');
      await probeRootfs(path.join(context, 'rootfs'));
      fs.writeFileSync(
        path.join(context, 'Dockerfile'),
        [
          'FROM scratch AS probe',
          'COPY rootfs/ /',
          'ARG NONCE',
          `RUN ["/bin/bash", "/probe.sh", "node=${hostIP}:${node.port}", "outside=${outside.peer}:${outsidePort}"]`,
          'FROM scratch',
          'COPY --from=probe /out/ /',
          '',
        ].join('\n'),
      );
      const out = path.join(work.dir, 'out-podnet');
      await build(context, out, `tcp://${podIP}:1234`);
      const result = fs.readFileSync(path.join(out, 'result'), 'utf8').trim().split('\n');
      expect(result[0], result.join('\n')).toMatch(
        new RegExp(`^GATEWAY ${SUBNET_PREFIX.replace('.', '\\.')}\\.`),
      );
      expect(Object.fromEntries(result.slice(1).map((l) => l.split(' ')))).toEqual({
        node: 'BLOCKED',
        outside: 'REACHED',
      });
      expect(node.accepted()).toBe(0);
    } finally {
      if (outsideListener.pid) process.kill(outsideListener.pid);
    }
  }, 420_000);
});
