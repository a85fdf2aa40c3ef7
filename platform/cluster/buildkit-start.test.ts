import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILD_SUBNET, buildConflist, CNI_BIN_DIR } from '../../core/daemons/buildkit.ts';
import { egressScript } from '../../core/network/egress.ts';
import { CLUSTER_BUILD_NETWORK, CLUSTER_BUILD_SUBNET } from './buildkit.ts';
import { buildkitStartScript } from './buildkit-start.ts';

const exec = promisify(execFile);

/**
 * The start of the in-cluster buildkitd removes what a killed one left of its steps' networks,
 * with the real CNI ptp plugin in network namespaces of the test's own: a "pod" namespace (the
 * BuildKit pod's, or on one node the host's) where steps of the cluster's network (10.215/16) and
 * of the product's own buildkitd (10.213/16, which shares the host on one node) were set up, the
 * cluster's step namespaces then gone without a CNI DEL, as when buildkitd is killed.
 */
describe("buildkitd's start in the pod: the stale masquerading rules of its steps", () => {
  const tag = `${process.pid}`;
  const pod = `dmcp-bks-${tag}`;
  const steps: string[] = [];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bk-start-'));
  const inPod = (cmd: string, args: string[], env: Record<string, string> = {}) =>
    exec('ip', [
      'netns',
      'exec',
      pod,
      'env',
      ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
      cmd,
      ...args,
    ]);
  const nat = async () => (await inPod('iptables', ['-t', 'nat', '-S'])).stdout.trim().split('\n');

  /** A step's namespace joined to the pod's by the ptp plugin of `network` (CNI ADD, run in the pod's namespace). */
  async function step(network: string, subnet: string, id: string): Promise<string> {
    const ns = `dmcp-bks-${tag}-${steps.length}`;
    await exec('ip', ['netns', 'add', ns]);
    steps.push(ns);
    const list = JSON.parse(buildConflist(network, subnet));
    const conf = { cniVersion: list.cniVersion, name: list.name, ...list.plugins[0] };
    conf.ipam.dataDir = path.join(dir, 'ipam');
    await new Promise<void>((resolve, reject) => {
      const child = spawn('ip', ['netns', 'exec', pod, path.join(CNI_BIN_DIR, 'ptp')], {
        env: {
          CNI_COMMAND: 'ADD',
          CNI_CONTAINERID: id,
          CNI_NETNS: `/run/netns/${ns}`,
          CNI_IFNAME: 'eth1',
          CNI_PATH: CNI_BIN_DIR,
          PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
        },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (c) => {
        out += c;
      });
      child.once('error', reject);
      child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`ptp ADD failed: ${out}`))));
      child.stdin.end(JSON.stringify(conf));
    });
    return ns;
  }

  beforeAll(async () => {
    await exec('ip', ['netns', 'add', pod]);
    await inPod('ip', ['link', 'set', 'lo', 'up']);
  });

  afterAll(async () => {
    for (const ns of [...steps, pod]) await exec('ip', ['netns', 'del', ns]).catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("removes the killed daemon's rules of 10.215/16 only, then runs buildkitd with its arguments; a second start removes nothing", async () => {
    // The egress rules the init container set, which the start leaves alone.
    const egress = path.join(dir, 'egress.sh');
    fs.writeFileSync(
      egress,
      egressScript({ name: 'KBUILDT', source: CLUSTER_BUILD_SUBNET, resolvers: [], denied: [] }),
    );
    await inPod('sh', [egress]);
    const killed = [await step(CLUSTER_BUILD_NETWORK, CLUSTER_BUILD_SUBNET, `killed-${tag}-a`)];
    killed.push(await step(CLUSTER_BUILD_NETWORK, CLUSTER_BUILD_SUBNET, `killed-${tag}-b`));
    await step('deploy-mcp-build', BUILD_SUBNET, `product-${tag}`);
    // buildkitd killed: its step namespaces go without a CNI DEL.
    for (const ns of killed) await exec('ip', ['netns', 'del', ns]);
    const before = await nat();
    const ours = (l: string) => l.includes(`name: \\"${CLUSTER_BUILD_NETWORK}\\"`);
    const product = (l: string) => l.includes('name: \\"deploy-mcp-build\\"');
    // The premise: each step's jump and its chain's two rules (no masquerading inside the range, then MASQUERADE) stay.
    expect(before.filter((l) => ours(l) && l.startsWith('-A POSTROUTING -s 10.215.'))).toHaveLength(2);
    expect(before.filter(ours)).toHaveLength(6);
    expect(before.filter(product)).toHaveLength(3);
    const others = async () => [
      (await inPod('iptables', ['-t', 'mangle', '-S'])).stdout,
      (await inPod('iptables', ['-t', 'filter', '-S'])).stdout,
    ];
    const othersBefore = await others();

    // buildkitd's stand-in: records its arguments.
    const bin = path.join(dir, 'bin');
    fs.mkdirSync(bin);
    fs.writeFileSync(path.join(bin, 'buildkitd'), `#!/bin/sh\necho "$@" > ${dir}/args\n`, { mode: 0o755 });
    const start = path.join(dir, 'start.sh');
    fs.writeFileSync(start, buildkitStartScript(CLUSTER_BUILD_NETWORK, CLUSTER_BUILD_SUBNET));
    const env = { PATH: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin` };
    const first = await inPod('sh', [start, '--config', '/etc/buildkit/buildkitd.toml'], env);
    expect(first.stdout).toMatch(/removed the masquerading rules of deploy-mcp-cluster-build/);
    expect(fs.readFileSync(path.join(dir, 'args'), 'utf8').trim()).toBe(
      '--config /etc/buildkit/buildkitd.toml',
    );
    const after = await nat();
    expect(after.filter(ours)).toEqual([]);
    // No chain of theirs is left either (the chains' names derive from the network and id).
    const chainsBefore = before.filter((l) => l.startsWith('-N CNI-'));
    const productChains = before
      .filter((l) => product(l) && l.startsWith('-A POSTROUTING'))
      .map((l) => `-N ${l.split(' -j ')[1]}`);
    expect(chainsBefore).toHaveLength(3);
    expect(after.filter((l) => l.startsWith('-N CNI-'))).toEqual(productChains);
    // The product's own step (10.213/16) and everything else in nat, mangle and filter: as before.
    const ourChains = chainsBefore.filter((l) => !productChains.includes(l));
    expect(after).toEqual(before.filter((l) => !ours(l) && !ourChains.includes(l)));
    expect(await others()).toEqual(othersBefore);

    const second = await inPod('sh', [start], env);
    expect(second.stdout).toBe('');
    expect(await nat()).toEqual(after);
  }, 60_000);
});
