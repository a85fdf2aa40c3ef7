import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { shellWords, writeCniConfig } from './cni.ts';

describe('writeCniConfig', () => {
  it('puts pods on the bridge, then takes IPv6 off their eth0 (loopback keeps ::1)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cni-conf-'));
    try {
      const file = writeCniConfig(dir, {
        network: 'deploy-mcp-k8s-0a1b2c3d',
        bridge: 'dmk8s-0a1b2c',
        subnet: '10.244.7.0/24',
        ipamDir: '/x/ipam',
      });
      const list = JSON.parse(fs.readFileSync(file, 'utf8')) as { plugins: { type: string }[] };
      expect(list.plugins.map((p) => p.type)).toEqual(['bridge', 'tuning']);
      // Otherwise eth0's link-local address reaches fe80::<bridge>, i.e. what listens on :: on the host.
      expect(list.plugins[1]).toEqual({ type: 'tuning', sysctl: { 'net.ipv6.conf.eth0.disable_ipv6': '1' } });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('shellWords', () => {
  it('splits an iptables -S rule of the bridge plugin into the arguments iptables -D takes', () => {
    const rule =
      '-A POSTROUTING -s 10.244.7.2/32 -m comment --comment "name: \\"deploy-mcp-k8s-0a1b2c3d\\" id: \\"5e44\\"" -j CNI-4909bb2ff47254ec9c3d56e9';
    expect(shellWords(rule)).toEqual([
      '-A',
      'POSTROUTING',
      '-s',
      '10.244.7.2/32',
      '-m',
      'comment',
      '--comment',
      'name: "deploy-mcp-k8s-0a1b2c3d" id: "5e44"',
      '-j',
      'CNI-4909bb2ff47254ec9c3d56e9',
    ]);
  });
});
