// Where a warm stack update's time goes before its first resource (printed by
// `npm run bench -- update`): from `up` to the program's start (the CLI's start, the backend
// read, the passphrase's key derivation, the language host), then to the dynamic provider's
// first call; and, for a program started before its input is known (as a deploy's update would
// be while the image builds), from the input's delivery to the provider's first call.
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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function benchUpdateStart() {
  const work = scratchDir('bench-update-start', path.join(repoRoot, '.data', 'test'));
  const loadBefore = os.loadavg();
  try {
    const runner = new TenantStackRunner({
      projectName: 'deploy-mcp-bench',
      backendUrl: `file://${path.join(work.dir, 'state')}`,
      workRoot: path.join(work.dir, 'work'),
      passphrase: 'bench',
    });
    const toProgram: number[] = [];
    const toProvider: number[] = [];
    const waitingToProvider: number[] = [];
    // The first update creates the stack: not counted. Plain and waiting updates alternate.
    for (let i = 0; i <= UPDATES * 2; i++) {
      const t0 = Date.now();
      let programAt = 0;
      if (i % 2 === 0) {
        const { outputs } = await runner.up('clock', async () => {
          programAt = Date.now();
          return { at: new Clock(i).at };
        });
        if (i > 0) {
          toProgram.push(programAt - t0);
          toProvider.push((outputs.at?.value as number) - programAt);
        }
        continue;
      }
      let deliver!: (n: number) => void;
      const input = new Promise<number>((resolve) => {
        deliver = resolve;
      });
      const update = runner.up('clock', async () => {
        programAt = Date.now();
        return { at: new Clock(await input).at };
      });
      for (let k = 0; k < 1200 && !programAt; k++) await sleep(50); // at most 60 s
      await sleep(500); // the "build" goes on a little longer
      const delivered = Date.now();
      deliver(i);
      const { outputs } = await update;
      waitingToProvider.push((outputs.at?.value as number) - delivered);
    }
    await runner.destroy('clock');
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
    const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
    const line = (label: string, xs: number[]) =>
      console.log(`  ${label}: median ${s(median(xs))} (${xs.map(s).join(', ')})`);
    console.log('\nA warm stack update before its first resource, one stack of one dynamic resource');
    console.log(`  load average before: ${loadBefore.map((x) => x.toFixed(2)).join(' ')}`);
    line("`up` → the program's start", toProgram);
    line("the program's start → the provider's first call", toProvider);
    line("program waiting for its input: input delivered → the provider's first call", waitingToProvider);
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
