import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { childEnv } from '../child-env.ts';
import { CNI_BIN_DIR } from './containerd.ts';
import { run, SYSTEM_PATH } from './exec.ts';
import { writeIfChanged } from './layout.ts';

/** Where libcni caches each attachment's result (containerd's CRI does not move it). */
const CNI_CACHE_DIR = '/var/lib/cni/results';

export type PodNetwork = {
  /** CNI network name (labels the NAT rules the bridge plugin adds). */
  network: string;
  bridge: string;
  /** e.g. 10.244.7.0/24 */
  subnet: string;
  /** host-local IPAM's allocation directory. */
  ipamDir: string;
};

export function cniPaths(dir: string) {
  return { confDir: path.join(dir, 'net.d'), ipamDir: path.join(dir, 'ipam') };
}

/**
 * The pod network: every pod on one bridge of our own, addresses from a /24 by host-local IPAM,
 * the bridge as their gateway, masqueraded beyond the subnet. Traefik on the host reaches pods
 * on their addresses over the bridge.
 *
 * No IPv6 on the pod's link (the `tuning` plugin, after `bridge`): otherwise eth0 gets an IPv6
 * link-local address, and so does the bridge, and a pod reaches `fe80::<bridge>%eth0`, i.e.
 * whatever listens on `::` on the host (kubelet's 10250, sshd, any dual-stack listener), past
 * every IPv4 rule. Only eth0's IPv6 goes: loopback keeps `::1` (`all` would take it too).
 */
export function writeCniConfig(confDir: string, n: PodNetwork): string {
  const file = path.join(confDir, '10-deploy-mcp.conflist');
  writeIfChanged(
    file,
    `${JSON.stringify(
      {
        cniVersion: '1.0.0',
        name: n.network,
        plugins: [
          {
            type: 'bridge',
            bridge: n.bridge,
            isGateway: true,
            ipMasq: true,
            hairpinMode: true,
            ipam: {
              type: 'host-local',
              ranges: [[{ subnet: n.subnet }]],
              routes: [{ dst: '0.0.0.0/0' }],
              dataDir: n.ipamDir,
            },
          },
          { type: 'tuning', sysctl: { 'net.ipv6.conf.eth0.disable_ipv6': '1' } },
        ],
      },
      null,
      2,
    )}\n`,
    0o644,
  );
  return file;
}

/**
 * A /24 of 10.244.0.0/16 no interface of this machine routes yet, starting from one derived
 * from the cluster id (two clusters on one machine get different ones).
 */
export async function pickPodSubnet(id: string): Promise<string> {
  const routes = await run('ip', ['-4', 'route', 'show']);
  const start = Number.parseInt(id.slice(0, 2), 16);
  for (let i = 0; i < 256; i++) {
    const n = (start + i) % 256;
    if (!routes.includes(`10.244.${n}.`)) return `10.244.${n}.0/24`;
  }
  throw new Error('no free /24 in 10.244.0.0/16 for the pod network');
}

/**
 * Releases one pod's attachment through the bridge plugin (CNI DEL): its address, its NAT
 * chain, its cached result. For sandboxes the runtime can no longer tear down itself.
 */
export async function cniDelete(conflist: string, containerId: string, netns: string): Promise<void> {
  const list = JSON.parse(fs.readFileSync(conflist, 'utf8')) as {
    cniVersion: string;
    name: string;
    plugins: ({ type: string } & Record<string, unknown>)[];
  };
  for (const plugin of list.plugins) {
    const config = { cniVersion: list.cniVersion, name: list.name, ...plugin };
    await new Promise<void>((resolve) => {
      const child = spawn(path.join(CNI_BIN_DIR, plugin.type), [], {
        env: childEnv({
          PATH: SYSTEM_PATH,
          CNI_COMMAND: 'DEL',
          CNI_CONTAINERID: containerId,
          CNI_NETNS: netns,
          CNI_IFNAME: 'eth0',
          CNI_PATH: CNI_BIN_DIR,
        }),
        stdio: ['pipe', 'ignore', 'ignore'],
      });
      child.once('error', () => resolve());
      child.once('close', () => resolve());
      child.stdin.end(JSON.stringify(config));
    });
  }
}

/**
 * Removes what the pod network left on the host: the bridge, NAT rules and chains labelled with
 * the network's name (from pods that were not torn down), libcni's cached results.
 */
export async function removePodNetwork(n: Pick<PodNetwork, 'network' | 'bridge'>): Promise<string[]> {
  const removed: string[] = [];
  const links = await run('ip', ['-o', 'link', 'show']);
  if (links.split('\n').some((l) => l.split(': ')[1]?.split('@')[0] === n.bridge)) {
    await run('ip', ['link', 'delete', n.bridge]);
    removed.push(`bridge ${n.bridge}`);
  }
  const label = `name: \\"${n.network}\\"`;
  const rules = (await run('iptables', ['-w', '-t', 'nat', '-S', 'POSTROUTING'])).split('\n');
  for (const rule of rules) {
    if (!rule.startsWith('-A POSTROUTING') || !rule.includes(label)) continue;
    const args = shellWords(rule).slice(2);
    await run('iptables', ['-w', '-t', 'nat', '-D', 'POSTROUTING', ...args]).catch(() => undefined);
    const jump = args[args.indexOf('-j') + 1];
    if (jump?.startsWith('CNI-')) {
      await run('iptables', ['-w', '-t', 'nat', '-F', jump]).catch(() => undefined);
      await run('iptables', ['-w', '-t', 'nat', '-X', jump]).catch(() => undefined);
    }
    removed.push(`NAT rule ${jump ?? ''}`.trim());
  }
  // Results cached for pods that were not torn down: ours (<network>-<sandbox id>-eth0) and the
  // CRI's loopback attachment of the same sandboxes (cni-loopback-<sandbox id>-lo).
  let cached: string[] = [];
  try {
    cached = fs.readdirSync(CNI_CACHE_DIR);
  } catch {
    // no cache dir
  }
  const prefix = `${n.network}-`;
  for (const f of cached.filter((c) => c.startsWith(prefix))) {
    const sandbox = f.slice(prefix.length).replace(/-eth0$/, '');
    for (const file of [f, `cni-loopback-${sandbox}-lo`])
      fs.rmSync(path.join(CNI_CACHE_DIR, file), { force: true });
    removed.push(`cached CNI result of ${sandbox.slice(0, 12)}`);
  }
  return removed;
}

/** Splits an `iptables -S` line into its arguments (double quotes, backslash escapes). */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let current = '';
  let inWord = false;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (c === '\\' && i + 1 < line.length) {
      current += line[++i];
      inWord = true;
    } else if (c === '"') {
      quoted = !quoted;
      inWord = true;
    } else if (c === ' ' && !quoted) {
      if (inWord) words.push(current);
      current = '';
      inWord = false;
    } else {
      current += c;
      inWord = true;
    }
  }
  if (inWord) words.push(current);
  return words;
}
