import fs from 'node:fs';
import path from 'node:path';
import * as pulumi from '@pulumi/pulumi';
import { afterAll, describe, expect, it } from 'vitest';
import { TenantStackRunner } from '../../tenant-stacks/runner.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';

// A dynamic provider that manages one file: the smallest real resource with a full lifecycle.
// Its methods are serialized by Pulumi and run in the provider launcher, so they load Node
// built-ins with process.getBuiltinModule (import() would be rewritten by test transforms).
const fileProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: { path: string; content: string }) {
    const fsp = process.getBuiltinModule('node:fs/promises');
    await fsp.writeFile(inputs.path, inputs.content);
    return { id: inputs.path, outs: { ...inputs, bytes: Buffer.byteLength(inputs.content) } };
  },
  async delete(id: string) {
    const fsp = process.getBuiltinModule('node:fs/promises');
    await fsp.rm(id, { force: true });
  },
};

class ManagedFile extends pulumi.dynamic.Resource {
  declare readonly bytes: pulumi.Output<number>;
  constructor(name: string, args: { path: string; content: string }) {
    super(fileProvider, name, { ...args, bytes: undefined }, {});
  }
}

describe('Pulumi Automation API (inline program, dynamic provider, file backend)', () => {
  // Work dirs live inside the repo so the provider launcher resolves @pulumi/pulumi.
  const work = scratchDir('pulumi-proof', path.join(repoRoot, '.data', 'test'));
  afterAll(() => work.cleanup());

  const runner = new TenantStackRunner({
    projectName: 'deploy-mcp-proof',
    backendUrl: `file://${path.join(work.dir, 'state')}`,
    workRoot: path.join(work.dir, 'work'),
    passphrase: 'proof-passphrase',
  });
  const target = path.join(work.dir, 'managed.txt');
  const program = async () => {
    const file = new ManagedFile('greeting', { path: target, content: 'hello from a tenant stack' });
    return { bytes: file.bytes };
  };

  it('goes up: the resource exists and the stack reports its outputs', async () => {
    const { outputs, summary } = await runner.up('tenant-proof', program);
    expect(summary.result).toBe('succeeded');
    expect(fs.readFileSync(target, 'utf8')).toBe('hello from a tenant stack');
    expect(outputs.bytes?.value).toBe(25);
    expect(await runner.listStacks()).toContain('tenant-proof');
  });

  it('records state an auditor can export', async () => {
    const state = (await runner.exportState('tenant-proof')) as { resources: { type: string }[] };
    expect(state.resources.map((r) => r.type)).toContain('pulumi-nodejs:dynamic:Resource');
    const history = await runner.history('tenant-proof');
    expect(history[0]?.kind).toBe('update');
  });

  it("runs one stack's updates one after another: a second started during the first waits instead of meeting its lock", async () => {
    const before = (await runner.history('tenant-proof')).length;
    let open: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    let firstRunning: () => void = () => undefined;
    const started = new Promise<void>((resolve) => {
      firstRunning = resolve;
    });
    const slow = async () => {
      firstRunning();
      await gate; // the first update holds the stack until the test lets it go
      return program();
    };
    const first = runner.up('tenant-proof', slow);
    await started;
    const second = runner.up('tenant-proof', program);
    let settled = false;
    const waiting = runner.settled('tenant-proof').then(() => {
      settled = true;
    });
    await new Promise((r) => setTimeout(r, 1000));
    expect(settled).toBe(false);
    open();
    const results = await Promise.all([first, second]);
    expect(results.map((r) => r.summary.result)).toEqual(['succeeded', 'succeeded']);
    await waiting;
    expect(settled).toBe(true);
    expect((await runner.history('tenant-proof')).length).toBe(before + 2);
  }, 120_000);

  it('is destroyed: the resource and the stack are gone', async () => {
    await runner.destroy('tenant-proof');
    expect(fs.existsSync(target)).toBe(false);
    expect(await runner.listStacks()).not.toContain('tenant-proof');
  });
});
