import { describe, expect, it } from 'vitest';
import { shellWords } from './cni.ts';

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
