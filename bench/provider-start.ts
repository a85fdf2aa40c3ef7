// The dynamic-provider plugin's start (printed by `npm run bench -- provider`): from `up` to the
// provider's first call, with our launcher (tenant-stacks/provider-plugin) and with Pulumi's,
// alternated in one process so that both see the same load.
import os from 'node:os';
import path from 'node:path';
import * as pulumi from '@pulumi/pulumi';
import { TenantStackRunner } from '../tenant-stacks/runner.ts';
import { repoRoot, scratchDir } from '../test/support/scratch.ts';

const UPDATES = 6;

// Reports when it ran; its input changes every update, so every update calls it.
const clockProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: { n: number }) {
    return { id: 'clock', outs: { ...inputs, at: Date.now() } };
  },
  async update(_id: string, _olds: unknown, news: { n: number }) {
    return { outs: { ...news, at: Date.now() } };
  },
};

class Clock extends pulumi.dynamic.Resource {
  declare readonly at: pulumi.Output<number>;
  constructor(n: number) {
    super(clockProvider, 'clock', { n, at: undefined }, {});
  }
}

export async function benchProviderStart() {
  const work = scratchDir('bench-provider', path.join(repoRoot, '.data', 'test'));
  const launchers = ['ours', 'pulumi'] as const;
  const loadBefore = os.loadavg();
  try {
    const runner = (launcher: (typeof launchers)[number]) =>
      new TenantStackRunner({
        projectName: 'deploy-mcp-bench',
        backendUrl: `file://${path.join(work.dir, 'state')}`,
        workRoot: path.join(work.dir, `work-${launcher}`),
        passphrase: 'bench',
        providerPlugin: launcher,
      });
    const runners = { ours: runner('ours'), pulumi: runner('pulumi') };
    const times = { ours: [] as number[], pulumi: [] as number[] };
    // The first update of each creates its stack: not counted.
    for (let i = 0; i <= UPDATES; i++)
      for (const l of i % 2 ? [...launchers].reverse() : launchers) {
        const t0 = Date.now();
        const { outputs } = await runners[l].up(`clock-${l}`, async () => ({ at: new Clock(i).at }));
        if (i > 0) times[l].push((outputs.at?.value as number) - t0);
      }
    for (const l of launchers) await runners[l].destroy(`clock-${l}`);
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
    const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
    console.log(
      "\nDynamic-provider plugin: from `up` to the provider's first call, one stack of one resource",
    );
    console.log(`  load average before: ${loadBefore.map((x) => x.toFixed(2)).join(' ')}`);
    for (const l of launchers)
      console.log(
        `  ${l === 'ours' ? 'our launcher' : "Pulumi's launcher"}: median ${s(median(times[l]))} (${times[l].map(s).join(', ')})`,
      );
    console.log(`  ratio ours / Pulumi's: ${(median(times.ours) / median(times.pulumi)).toFixed(2)}`);
    console.log(
      `  load average after: ${os
        .loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}`,
    );
  } finally {
    work.cleanup();
  }
}
