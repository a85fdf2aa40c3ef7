import fs from 'node:fs';
import path from 'node:path';
import * as pulumi from '@pulumi/pulumi';
import { afterAll, describe, expect, it } from 'vitest';
import { TenantStackRunner } from '../../tenant-stacks/runner.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';

// What an update started before its input is known leaves behind (the premise of starting a
// deploy's stack update while its image still builds: tenant-stacks/README.md, "Starting the
// update during the build"). The program awaits the input before it registers anything.

// A dynamic provider that manages one file (as in pulumi.test.ts); it also updates in place.
const fileProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: { path: string; content: string }) {
    const fsp = process.getBuiltinModule('node:fs/promises');
    await fsp.writeFile(inputs.path, inputs.content);
    return { id: inputs.path, outs: inputs };
  },
  async update(id: string, _olds: unknown, news: { path: string; content: string }) {
    const fsp = process.getBuiltinModule('node:fs/promises');
    await fsp.writeFile(id, news.content);
    return { outs: news };
  },
  async delete(id: string) {
    const fsp = process.getBuiltinModule('node:fs/promises');
    await fsp.rm(id, { force: true });
  },
};

class ManagedFile extends pulumi.dynamic.Resource {
  declare readonly content: pulumi.Output<string>;
  constructor(name: string, args: { path: string; content: string }) {
    super(fileProvider, name, args, {});
  }
}

/** A value delivered later (or never: failed), with a flag for the program having started. */
function later<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const value = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  value.catch(() => undefined);
  return { value, resolve, reject };
}

/** Bounded wait until `done()` (the program has started), polling every 50 ms. */
async function until(done: () => boolean, what: string, ms = 120_000) {
  for (const end = Date.now() + ms; !done(); ) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('an update whose program waits for its input', () => {
  const work = scratchDir('pulumi-waiting', path.join(repoRoot, '.data', 'test'));
  afterAll(() => work.cleanup());

  const runner = new TenantStackRunner({
    projectName: 'deploy-mcp-proof',
    backendUrl: `file://${path.join(work.dir, 'state')}`,
    workRoot: path.join(work.dir, 'work'),
    passphrase: 'proof-passphrase',
  });
  const serving = path.join(work.dir, 'serving.txt');
  const candidate = path.join(work.dir, 'candidate.txt');
  const stack = 'waiting-proof';
  const steady = async () => ({
    content: new ManagedFile('serving', { path: serving, content: 'v1' }).content,
  });
  const resources = async () =>
    ((await runner.exportState(stack)) as { resources?: { urn: string }[] }).resources?.map((r) => r.urn) ??
    [];

  it('fails without creating, changing or deleting anything when the input fails', async () => {
    await runner.up(stack, steady);
    const before = await resources();
    expect(before.some((u) => u.endsWith('::serving'))).toBe(true);

    const image = later<string>();
    let started = false;
    const update = runner.up(stack, async () => {
      started = true;
      const content = await image.value; // the build's result
      // Registered only once the input is known: a new resource, and the old one dropped.
      return { content: new ManagedFile('candidate', { path: candidate, content }).content };
    });
    // A clean-up asked for meanwhile runs after it (one update of a stack at a time).
    await until(() => started, 'the program runs');
    let cleanupRan = false;
    const cleanup = runner.up(stack, steady).then((r) => {
      cleanupRan = true;
      return r;
    });
    image.reject(new Error('the build failed: exit 1'));

    await expect(update).rejects.toThrow(/the build failed: exit 1/);
    expect(fs.existsSync(candidate)).toBe(false);
    expect(fs.readFileSync(serving, 'utf8')).toBe('v1');
    expect(await resources()).toEqual(before);

    const after = await cleanup;
    expect(cleanupRan).toBe(true);
    expect(after.summary.result).toBe('succeeded');
    expect(after.summary.resourceChanges).toEqual({ same: 2 }); // the stack and the file, untouched
    // The failed update stays in the stack's history (newest first), as an audit shows it.
    const [latest, failed] = await runner.history(stack);
    expect(latest?.result).toBe('succeeded');
    expect(failed?.result).toBe('failed');
    await runner.settled(stack);
  });

  it('completes with the input delivered while it waited', async () => {
    const image = later<string>();
    let started = false;
    const update = runner.up(stack, async () => {
      started = true;
      const content = await image.value;
      return { content: new ManagedFile('candidate', { path: candidate, content }).content };
    });
    await until(() => started, 'the program runs');
    image.resolve('v2');
    const { outputs } = await update;
    expect(outputs.content?.value).toBe('v2');
    expect(fs.readFileSync(candidate, 'utf8')).toBe('v2');
    expect(fs.existsSync(serving)).toBe(false); // no longer registered, so deleted

    await runner.destroy(stack);
    expect(fs.existsSync(candidate)).toBe(false);
  });
});
