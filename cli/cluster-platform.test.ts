import { describe, expect, it } from 'vitest';
import { DomainError } from '../core/errors.ts';
import { CLUSTER_PLATFORM_PORTS, parseClusterPlatformArgs } from './cluster-platform.ts';

describe('deploy-mcp cluster platform arguments', () => {
  it('takes up or destroy, with default ports clear of the product and the embedded runtime', () => {
    expect(parseClusterPlatformArgs(['up'])).toEqual({
      action: 'up',
      dir: undefined,
      ports: CLUSTER_PLATFORM_PORTS,
      deployer: false,
    });
    expect(Object.values(CLUSTER_PLATFORM_PORTS)).not.toContain(8080);
    expect(Object.values(CLUSTER_PLATFORM_PORTS)).not.toContain(5000);
    expect(
      parseClusterPlatformArgs([
        'up',
        '--dir',
        '/tmp/c',
        '--web-port=18080',
        '--websecure-port',
        '18443',
        '--registry-port',
        '15000',
        '--buildkit-port',
        '11234',
        '--deployer',
      ]),
    ).toEqual({
      action: 'up',
      dir: '/tmp/c',
      ports: { web: 18080, websecure: 18443, registry: 15000, buildkit: 11234 },
      deployer: true,
    });
    expect(parseClusterPlatformArgs(['destroy', '--dir', 'x'])).toMatchObject({
      action: 'destroy',
      dir: 'x',
    });
  });

  it('refuses an unknown action, a bad or repeated port and unknown flags', () => {
    expect(() => parseClusterPlatformArgs([])).toThrow(DomainError);
    expect(() => parseClusterPlatformArgs(['preview'])).toThrow(/unknown action "preview"/);
    expect(() => parseClusterPlatformArgs(['up', '--web-port', '0'])).toThrow(
      /--web-port must be a port number/,
    );
    expect(() => parseClusterPlatformArgs(['up', '--registry-port', '5000x'])).toThrow(
      /--registry-port must be a port number/,
    );
    expect(() => parseClusterPlatformArgs(['up', '--web-port', '70000'])).toThrow(/port number/);
    expect(() => parseClusterPlatformArgs(['up', '--web-port', '1235'])).toThrow(
      /the four ports must differ/,
    );
    expect(() => parseClusterPlatformArgs(['up', '--stack', 'x'])).toThrow(/stack/);
  });
});
