import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { connectedNetworks, systemResolvers } from './egress.ts';

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
