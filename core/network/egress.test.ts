import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { connectedNetworks, egressScript, systemResolvers } from './egress.ts';

const exec = promisify(execFile);

const file = (text: string) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'egress-'));
  fs.writeFileSync(path.join(dir, 'f'), text);
  return path.join(dir, 'f');
};

describe('egress inputs', () => {
  it('reads the networks the machine sits on from its routing table (no default, no host routes)', () => {
    const routes = file(
      [
        'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT',
        'eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0',
        'eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0',
        'cni0\t00005A0A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0',
        'veth1\t0200D50A\t00000000\t0005\t0\t0\t0\tFFFFFFFF\t0\t0\t0',
        'eth1\t0000000A\t0100000A\t0003\t0\t0\t0\t000000FF\t0\t0\t0',
      ].join('\n'),
    );
    expect(connectedNetworks(routes)).toEqual(['192.0.2.0/24', '10.90.0.0/16']);
  });

  it('reads IPv4 resolvers of resolv.conf', () => {
    const conf = file(
      '# comment\nnameserver 10.255.255.53\nnameserver ::1\nsearch example\nnameserver 192.0.2.53\n',
    );
    expect(systemResolvers(conf)).toEqual(['10.255.255.53', '192.0.2.53']);
    expect(systemResolvers('/nonexistent')).toEqual([]);
  });
});

describe('egressScript (for an image without Node)', () => {
  it('installs the chains and their jumps in a network namespace, and a second run adds no jump', async () => {
    const ns = `dmcp-egress-${process.pid}`;
    const script = egressScript({
      name: 'TEST',
      source: '10.250.0.0/16',
      resolvers: ['192.0.2.53'],
      denied: ['198.51.100.0/24'],
    });
    await exec('ip', ['netns', 'add', ns]);
    try {
      const inNs = (cmd: string, args: string[]) => exec('ip', ['netns', 'exec', ns, cmd, ...args]);
      const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'egress-')), 'egress.sh');
      fs.writeFileSync(file, script);
      await inNs('sh', [file]);
      await inNs('sh', [file]);
      const forward = (await inNs('iptables', ['-t', 'mangle', '-S'])).stdout.split('\n');
      const filter = (await inNs('iptables', ['-S'])).stdout.split('\n');
      expect(forward.filter((l) => l === '-A FORWARD -s 10.250.0.0/16 -j DMCP-TEST')).toHaveLength(1);
      expect(filter.filter((l) => l === '-A INPUT -s 10.250.0.0/16 -j DMCP-TEST-IN')).toHaveLength(1);
      for (const range of ['10.0.0.0/8', '169.254.0.0/16', '127.0.0.0/8', '198.51.100.0/24'])
        expect(forward).toContain(`-A DMCP-TEST -d ${range} -j DROP`);
      expect(forward).toContain('-A DMCP-TEST -d 192.0.2.53/32 -p udp -m udp --dport 53 -j RETURN');
      expect(filter).toContain('-A DMCP-TEST-IN -p tcp -j REJECT --reject-with tcp-reset');
      // Nothing of it on this machine's own firewall.
      expect((await exec('iptables', ['-t', 'mangle', '-S'])).stdout).not.toContain('DMCP-TEST');
    } finally {
      await exec('ip', ['netns', 'del', ns]);
    }
  });

  it('denies the addresses of the given environment variables (IPv4 /32; IPv6 skipped), and fails without one', async () => {
    const ns = `dmcp-egress-env-${process.pid}`;
    const script = egressScript({
      name: 'TESTENV',
      source: '10.250.0.0/16',
      resolvers: [],
      deniedFromEnv: ['NODE_IP', 'NODE_IPS'],
    });
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'egress-')), 'egress.sh');
    fs.writeFileSync(file, script);
    await exec('ip', ['netns', 'add', ns]);
    try {
      const run = (env: Record<string, string>) =>
        exec('ip', [
          'netns',
          'exec',
          ns,
          'env',
          '-i',
          'PATH=/usr/sbin:/usr/bin:/sbin:/bin',
          ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
          'sh',
          file,
        ]);
      const forward = async () =>
        (await exec('ip', ['netns', 'exec', ns, 'iptables', '-t', 'mangle', '-S', 'DMCP-TESTENV'])).stdout
          .split('\n')
          .filter((l) => l.includes('/32 -j DROP'));
      // As the downward API gives them: status.hostIP, and status.hostIPs comma-separated.
      await run({ NODE_IP: '198.51.100.7', NODE_IPS: '198.51.100.7,2001:db8::7,203.0.113.9' });
      expect(await forward()).toEqual([
        '-A DMCP-TESTENV -d 198.51.100.7/32 -j DROP',
        '-A DMCP-TESTENV -d 203.0.113.9/32 -j DROP',
      ]);
      // Rerun with another address: the chain is replaced, not appended to.
      await run({ NODE_IP: '198.51.100.8' });
      expect(await forward()).toEqual(['-A DMCP-TESTENV -d 198.51.100.8/32 -j DROP']);
      // No IPv4 address, or anything that is not one: the script fails and leaves the chain as it was.
      const bad: Record<string, string>[] = [
        {},
        { NODE_IPS: '2001:db8::7' },
        { NODE_IP: '198.51.100.9/0' },
        { NODE_IP: '$(id)' },
      ];
      for (const env of bad)
        await expect(run(env), JSON.stringify(env)).rejects.toThrow(
          /egress: (no IPv4 address|not an address)/,
        );
      expect(await forward()).toEqual(['-A DMCP-TESTENV -d 198.51.100.8/32 -j DROP']);
    } finally {
      await exec('ip', ['netns', 'del', ns]);
    }
  });
});
