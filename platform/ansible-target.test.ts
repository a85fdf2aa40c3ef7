import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  ANSIBLE_DIR,
  ANSIBLE_PLAYBOOK,
  type PlaybookRun,
  startTarget,
  TARGET_TARBALL,
  type Target,
} from './ansible-target.ts';

// The common and firewall roles applied for real, twice, to a throwaway Debian container
// (platform/ansible-target.ts); the firewall read back from the container's own network namespace.
// scripts/setup-ansible.sh (run by `npm test`) provides ansible-playbook and the target's root.

const run = promisify(execFile);
const ADMIN_CIDR = '203.0.113.0/24';

/** Tasks (and handlers) a run reports as changed, as "role : name". */
function changedTasks(output: string): string[] {
  const changed: string[] = [];
  let task = '';
  for (const line of output.split('\n')) {
    const m = line.match(/^(?:TASK|RUNNING HANDLER) \[(.+?)\] \*+$/);
    if (m?.[1]) task = m[1];
    else if (/^changed: \[target\]/.test(line) && !changed.includes(task)) changed.push(task);
  }
  return changed;
}

/** The filter table of a network namespace, rules only (no counters, no comments). */
async function filterRules(pid: number, save = 'iptables-nft-save'): Promise<string[]> {
  const { stdout } = await run('nsenter', [`--net=/proc/${pid}/ns/net`, save, '-t', 'filter']);
  return stdout.split('\n').filter((l) => l.startsWith('-A '));
}

/** A command prefix that enters a network namespace (nsenter --net=…, ip netns exec …). */
type Enter = [string, ...string[]];

/** Runs a command in the network namespace `enter` enters (bounded: 20 s). */
function inNamespace(enter: Enter, ...args: string[]) {
  return run(enter[0], [...enter.slice(1), ...args], { timeout: 20_000 });
}

/** The usable (not tentative) link-local address of `iface` in the network namespace `enter` enters. */
async function linkLocal(enter: Enter, iface: string): Promise<string> {
  for (let i = 0; i < 75; i++) {
    const { stdout } = await inNamespace(enter, 'cat', '/proc/net/if_inet6');
    for (const line of stdout.split('\n')) {
      const [hex, , , scope, flags, name] = line.trim().split(/\s+/);
      if (name === iface && scope === '20' && (Number.parseInt(flags ?? '0', 16) & 0x40) === 0 && hex)
        return (hex.match(/.{4}/g) as string[]).join(':');
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`no usable link-local address on ${iface} within 15 s`);
}

const CONNECT = `const s = require('node:net').connect({ host: process.argv[1], port: +process.argv[2], timeout: 3000 });
s.on('connect', () => { console.log('REACHED'); s.destroy(); });
s.on('timeout', () => { console.log('FAILED timeout'); s.destroy(); });
s.on('error', (e) => console.log('FAILED ' + e.code));`;

/** REACHED or FAILED <why>: a TCP connect to host:port from the namespace `enter` enters (3 s). */
async function connectFrom(enter: Enter, host: string, port: number): Promise<string> {
  return (await inNamespace(enter, process.execPath, '-e', CONNECT, host, String(port))).stdout.trim();
}

describe.skipIf(!existsSync(ANSIBLE_PLAYBOOK) || !existsSync(TARGET_TARBALL))(
  'ansible/ common and firewall roles on a throwaway Debian target',
  () => {
    let target: Target;
    let first: PlaybookRun;
    let second: PlaybookRun;
    const vars = {
      admin_cidr: ADMIN_CIDR,
      admin_users: [] as { name: string; keys: string[] }[],
    };

    beforeAll(async () => {
      target = await startTarget();
      vars.admin_users = [{ name: 'sre', keys: [target.publicKey] }];
      first = await target.apply(['common', 'firewall'], vars);
      second = await target.apply(['common', 'firewall'], vars);
    }, 900_000);

    afterAll(async () => {
      await target?.remove();
    }, 120_000);

    it('the first run does the work; a second run changes nothing', () => {
      expect(first.recap, first.output).toMatchObject({ failed: 0, unreachable: 0 });
      expect(changedTasks(first.output), first.output).toEqual(
        expect.arrayContaining([
          'common : Base packages',
          'common : Sysctls',
          'common : Admin users',
          "common : Admin users' SSH keys",
          "common : Admin users' sudo",
          'common : SSH hardening (keys only, no passwords, no forwarding)',
          'firewall : Our rules',
          'firewall : Our IPv6 rules',
          'firewall : Load firewall rules without systemd',
        ]),
      );
      expect(second.recap, second.output).toEqual({
        ok: second.recap.ok,
        changed: 0,
        unreachable: 0,
        failed: 0,
      });
      expect(changedTasks(second.output)).toEqual([]);
      expect(second.recap.ok).toBeGreaterThan(10);
    });

    it('loads the rules into the target network namespace only: registry, API, kubelet, metadata', async () => {
      const targetNet = readlinkSync(`/proc/${target.pid}/ns/net`);
      expect(targetNet).toMatch(/^net:\[\d+\]$/);
      expect(targetNet).not.toBe(readlinkSync('/proc/self/ns/net'));
      const rules = await filterRules(target.pid);
      // Our chains first in INPUT and FORWARD, so nothing k3s adds later can bypass them.
      expect(rules.filter((r) => r.startsWith('-A INPUT '))[0]).toBe('-A INPUT -j DEPLOY-MCP-INPUT');
      expect(rules.filter((r) => r.startsWith('-A FORWARD '))[0]).toBe('-A FORWARD -j DEPLOY-MCP-FORWARD');
      // Pods (forwarded traffic) never reach the cloud's metadata endpoint.
      expect(rules.filter((r) => r.startsWith('-A DEPLOY-MCP-FORWARD '))).toEqual([
        '-A DEPLOY-MCP-FORWARD -d 169.254.169.254/32 -j REJECT --reject-with icmp-port-unreachable',
      ]);
      // As the kernel holds them: the registry from 10.0.0.0/16 and pods only, the API also from
      // the admin CIDR, kubelet/etcd/flannel from the private network only.
      expect(rules.filter((r) => r.startsWith('-A DEPLOY-MCP-INPUT '))).toEqual([
        '-A DEPLOY-MCP-INPUT -i lo -j RETURN',
        '-A DEPLOY-MCP-INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN',
        '-A DEPLOY-MCP-INPUT -s 10.0.0.0/16 -p tcp -m tcp --dport 5000 -j RETURN',
        '-A DEPLOY-MCP-INPUT -s 10.42.0.0/16 -p tcp -m tcp --dport 5000 -j RETURN',
        '-A DEPLOY-MCP-INPUT -p tcp -m tcp --dport 5000 -j DROP',
        '-A DEPLOY-MCP-INPUT -s 10.0.0.0/16 -p tcp -m tcp --dport 6443 -j RETURN',
        '-A DEPLOY-MCP-INPUT -s 10.42.0.0/16 -p tcp -m tcp --dport 6443 -j RETURN',
        `-A DEPLOY-MCP-INPUT -s ${ADMIN_CIDR} -p tcp -m tcp --dport 6443 -j RETURN`,
        '-A DEPLOY-MCP-INPUT -p tcp -m tcp --dport 6443 -j DROP',
        '-A DEPLOY-MCP-INPUT -s 10.42.0.0/16 -p tcp -m tcp --dport 10250 -j RETURN',
        '-A DEPLOY-MCP-INPUT ! -s 10.0.0.0/16 -p tcp -m multiport --dports 10250,2379,2380 -j DROP',
        '-A DEPLOY-MCP-INPUT ! -s 10.0.0.0/16 -p udp -m udp --dport 8472 -j DROP',
      ]);
      // Never the test machine's own firewall.
      await expect(run('iptables-nft', ['-S', 'DEPLOY-MCP-INPUT'])).rejects.toThrow();
    });

    it('IPv6: drops everything arriving from pod interfaces, to the node and through it', async () => {
      const rules = await filterRules(target.pid, 'ip6tables-nft-save');
      expect(rules.filter((r) => r.startsWith('-A INPUT '))[0]).toBe('-A INPUT -j DEPLOY-MCP-INPUT');
      expect(rules.filter((r) => r.startsWith('-A FORWARD '))[0]).toBe('-A FORWARD -j DEPLOY-MCP-FORWARD');
      // A pod's link-local address would otherwise reach fe80::<cni0> (anything on :: of the node)
      // and its neighbours on the bridge, past every IPv4 rule.
      for (const chain of ['INPUT', 'FORWARD'])
        expect(rules.filter((r) => r.startsWith(`-A DEPLOY-MCP-${chain} `))).toEqual([
          `-A DEPLOY-MCP-${chain} -i cni0 -j DROP`,
          `-A DEPLOY-MCP-${chain} -i veth+ -j DROP`,
          `-A DEPLOY-MCP-${chain} -i flannel+ -j DROP`,
        ]);
      // Never the test machine's own firewall.
      await expect(run('ip6tables-nft', ['-S', 'DEPLOY-MCP-INPUT'])).rejects.toThrow();
    });

    it('IPv6: a pod on cni0 does not reach a listener on :: of the node by the bridge’s link-local address; the node itself does', async () => {
      // flannel's layout in the target's namespace: the bridge cni0, a pod's veth on it, its eth0
      // in a namespace of this test's own.
      const tag = randomBytes(3).toString('hex');
      const pod = `dmv6-${tag}`;
      const node: Enter = ['nsenter', `--net=/proc/${target.pid}/ns/net`];
      const inPod: Enter = ['ip', 'netns', 'exec', pod];
      const sh = inNamespace;
      await run('ip', ['netns', 'add', pod]);
      const listener = spawn(
        'nsenter',
        [
          `--net=/proc/${target.pid}/ns/net`,
          process.execPath,
          '-e',
          `const s = require('node:net').createServer((c) => { console.log('ACCEPTED'); c.on('error', () => {}); c.end('hi'); });
s.listen(0, '::', () => console.log('PORT ' + s.address().port));
setTimeout(() => process.exit(0), 120000);`,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let out = '';
      listener.stdout.on('data', (d) => {
        out += d;
      });
      try {
        await sh(node, 'ip', 'link', 'add', 'cni0', 'type', 'bridge');
        await sh(
          node,
          'ip',
          'link',
          'add',
          `veth${tag}`,
          'type',
          'veth',
          'peer',
          'name',
          'eth0',
          'netns',
          pod,
        );
        await sh(node, 'ip', 'link', 'set', `veth${tag}`, 'master', 'cni0', 'up');
        await sh(node, 'ip', 'link', 'set', 'cni0', 'up');
        await sh(inPod, 'ip', 'link', 'set', 'eth0', 'up');
        const bridge = await linkLocal(node, 'cni0');
        await linkLocal(inPod, 'eth0');
        for (let i = 0; i < 50 && !/PORT \d+/.test(out); i++) await new Promise((r) => setTimeout(r, 200));
        const port = Number(out.match(/PORT (\d+)/)?.[1]);
        expect(port).toBeGreaterThan(0);

        // Control: the node reaches its own listener on the bridge's link-local address.
        expect(await connectFrom(node, `${bridge}%cni0`, port)).toBe('REACHED');
        // The pod's SYN is dropped on the way in (INPUT -i cni0).
        expect(await connectFrom(inPod, `${bridge}%eth0`, port)).toBe('FAILED timeout');
        expect(out.match(/ACCEPTED/g)).toHaveLength(1);
      } finally {
        listener.kill();
        await sh(node, 'ip', 'link', 'delete', 'cni0').catch(() => undefined);
        await run('ip', ['netns', 'delete', pod]).catch(() => undefined);
      }
    });

    it('the loader the boot unit runs leaves the same rules when run again', async () => {
      const unit = readFileSync(
        path.join(target.rootfs, 'etc/systemd/system/deploy-mcp-firewall.service'),
        'utf8',
      );
      expect(unit).toContain('ExecStart=/usr/local/sbin/deploy-mcp-firewall\n');
      expect(statSync(path.join(target.rootfs, 'usr/local/sbin/deploy-mcp-firewall')).mode & 0o777).toBe(
        0o755,
      );
      const before = await filterRules(target.pid);
      const before6 = await filterRules(target.pid, 'ip6tables-nft-save');
      await target.ssh('root', '/usr/local/sbin/deploy-mcp-firewall');
      await target.ssh('root', '/usr/local/sbin/deploy-mcp-firewall');
      expect(await filterRules(target.pid)).toEqual(before);
      expect(await filterRules(target.pid, 'ip6tables-nft-save')).toEqual(before6);
    });

    it('SSH: keys only (root and the admin user log in with their key, passwords are not offered)', async () => {
      const { stdout: effective } = await target.ssh('root', '/usr/sbin/sshd -T');
      for (const line of [
        'permitrootlogin without-password',
        'passwordauthentication no',
        'kbdinteractiveauthentication no',
        'pubkeyauthentication yes',
        'x11forwarding no',
        'allowagentforwarding no',
        'allowtcpforwarding no',
        'maxauthtries 3',
        'logingracetime 30',
      ])
        expect(effective.split('\n'), line).toContain(line);
      const { stdout: groups } = await target.ssh('sre', 'id -nG');
      expect(groups.trim().split(' ')).toEqual(expect.arrayContaining(['sre', 'sudo']));
      // The admin has no password: sudo without one (-n fails rather than prompting).
      expect((await target.ssh('sre', 'sudo -n id -u')).stdout.trim()).toBe('0');
      // The server offers public keys only (before the role, Debian's sshd also offers passwords).
      await expect(
        target.ssh('root', 'true', [
          '-o',
          'PubkeyAuthentication=no',
          '-o',
          'PreferredAuthentications=password,keyboard-interactive',
        ]),
      ).rejects.toThrow(/Permission denied \(publickey\)/);
    });

    it('sysctls, kernel modules at boot, unattended security upgrades without reboots', async () => {
      const defaults = parse(readFileSync(path.join(ANSIBLE_DIR, 'roles/common/defaults/main.yml'), 'utf8'));
      const written = Object.fromEntries(
        readFileSync(path.join(target.rootfs, 'etc/sysctl.d/90-deploy-mcp.conf'), 'utf8')
          .split('\n')
          .filter((l) => l && !l.startsWith('#'))
          .map((l) => l.split(' = ') as [string, string]),
      );
      expect(written).toEqual(
        Object.fromEntries(Object.entries(defaults.sysctls as object).map(([k, v]) => [k, String(v)])),
      );
      expect(written).toMatchObject({
        'net.ipv4.ip_forward': '1',
        'net.bridge.bridge-nf-call-iptables': '1',
      });
      // Every key is one this kernel knows (read only: the machine's sysctls are not the test's to
      // set). net.bridge.* appear once br_netfilter is loaded, which the modules file below does.
      const bridge = existsSync('/proc/sys/net/bridge');
      for (const key of Object.keys(written))
        if (bridge || !key.startsWith('net.bridge.'))
          expect(existsSync(`/proc/sys/${key.replaceAll('.', '/')}`), key).toBe(true);
      expect(readFileSync(path.join(target.rootfs, 'etc/modules-load.d/deploy-mcp.conf'), 'utf8')).toBe(
        'br_netfilter\noverlay\n',
      );
      const { stdout: apt } = await target.ssh('root', 'apt-config dump');
      expect(apt).toContain('APT::Periodic::Unattended-Upgrade "1";');
      expect(apt).toContain('APT::Periodic::Update-Package-Lists "1";');
      expect(apt).toContain('Unattended-Upgrade::Automatic-Reboot "false";');
      const packages = [
        'unattended-upgrades',
        'apt-listchanges',
        'iptables',
        'iptables-persistent',
        'curl',
        'sudo',
      ];
      const { stdout: status } = await target.ssh(
        'root',
        `dpkg-query -W -f '\${Status}\\n' ${packages.join(' ')}`,
      );
      expect(status.trim().split('\n')).toEqual(packages.map(() => 'install ok installed'));
    });
  },
);
