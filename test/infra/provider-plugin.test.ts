import path from 'node:path';
import * as pulumi from '@pulumi/pulumi';
import { afterAll, describe, expect, it } from 'vitest';
import { serializeFunction } from '../../tenant-stacks/provider-plugin/closure-on-demand.ts';
import { PROVIDER_PLUGIN_DIR, TenantStackRunner } from '../../tenant-stacks/runner.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';

// A dynamic provider that reports the process it runs in: the script node started, and whether
// Pulumi's closure serialization (TypeScript, @npmcli/arborist) was loaded there.
const probeProvider: pulumi.dynamic.ResourceProvider = {
  async create() {
    const loaded = Object.keys(require.cache);
    return {
      id: 'probe',
      outs: {
        script: process.argv[1],
        closureLoaded: loaded.some((f) => f.includes('serializeClosure') || f.includes('/typescript/')),
        runtimeLoaded: loaded.some((f) => f.endsWith('/runtime/index.js')),
      },
    };
  },
};

class Probe extends pulumi.dynamic.Resource {
  declare readonly script: pulumi.Output<string>;
  declare readonly closureLoaded: pulumi.Output<boolean>;
  declare readonly runtimeLoaded: pulumi.Output<boolean>;
  constructor(name: string) {
    super(probeProvider, name, { script: undefined, closureLoaded: undefined, runtimeLoaded: undefined }, {});
  }
}

describe("the dynamic-provider plugin's launcher (tenant-stacks/provider-plugin)", () => {
  const work = scratchDir('provider-plugin', path.join(repoRoot, '.data', 'test'));
  afterAll(() => work.cleanup());

  it('runs the providers of every stack the runner updates, without loading closure serialization', async () => {
    const runner = new TenantStackRunner({
      projectName: 'deploy-mcp-plugin-proof',
      backendUrl: `file://${path.join(work.dir, 'state')}`,
      workRoot: path.join(work.dir, 'work'),
      passphrase: 'plugin-proof-passphrase',
    });
    const { outputs } = await runner.up('plugin-proof', async () => {
      const p = new Probe('probe');
      return { script: p.script, closureLoaded: p.closureLoaded, runtimeLoaded: p.runtimeLoaded };
    });
    expect(outputs.script?.value).toBe(path.join(PROVIDER_PLUGIN_DIR, 'launcher.ts'));
    expect(outputs.runtimeLoaded?.value).toBe(true);
    expect(outputs.closureLoaded?.value).toBe(false);
    await runner.destroy('plugin-proof');
  });

  it('still serializes closures when asked: the deferred module loads on first use', () => {
    const text = serializeFunction(() => 42) as unknown as Promise<{ text: string }>;
    return expect(text).resolves.toMatchObject({ text: expect.stringContaining('42') });
  });
});
