import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as pulumi from '@pulumi/pulumi';
import { afterAll, describe, expect, it } from 'vitest';
import { TenantStackRunner } from '../../tenant-stacks/runner.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';

const quickProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: { note: string }) {
    return { id: inputs.note, outs: inputs };
  },
};

class Quick extends pulumi.dynamic.Resource {
  constructor(name: string, args: { note: string }) {
    super(quickProvider, name, args, {});
  }
}

describe('a process killed in the middle of pulumi up', () => {
  // Work dirs and the script live inside the repo: the provider launcher and the script resolve
  // @pulumi/pulumi from its node_modules.
  const work = scratchDir('pulumi-crash', path.join(repoRoot, '.data', 'test'));
  afterAll(() => work.cleanup());
  const options = {
    projectName: 'deploy-mcp-crash',
    backendUrl: `file://${path.join(work.dir, 'state')}`,
    workRoot: path.join(work.dir, 'work'),
    passphrase: 'crash-passphrase',
  };

  it('leaves a lock the next update clears, and no provider process behind', async () => {
    const marker = path.join(work.dir, 'provider.pid');
    const script = path.join(work.dir, 'slow-up.mts');
    // A "server" whose update hangs in a resource's create, like a container that takes long.
    fs.writeFileSync(
      script,
      `import * as pulumi from '@pulumi/pulumi';
import { TenantStackRunner } from ${JSON.stringify(path.join(repoRoot, 'tenant-stacks/runner.ts'))};
const provider = {
  async create(inputs) {
    process.getBuiltinModule('node:fs').writeFileSync(inputs.marker, String(process.pid));
    await new Promise((r) => setTimeout(r, 120_000));
    return { id: 'slow', outs: inputs };
  },
};
class Slow extends pulumi.dynamic.Resource {
  constructor(name, args) { super(provider, name, args, {}); }
}
const runner = new TenantStackRunner(${JSON.stringify(options)});
await runner.up('tenant-crash', async () => { new Slow('slow', { marker: ${JSON.stringify(marker)} }); return {}; });
`,
    );
    const child = spawn(
      process.execPath,
      ['--import', path.join(repoRoot, 'node_modules/tsx/dist/loader.mjs'), script],
      { stdio: 'ignore', detached: true },
    );
    const exited = new Promise((resolve) => child.once('exit', resolve));
    for (let i = 0; i < 600 && !fs.existsSync(marker); i++) await sleep(100);
    const providerPid = Number(fs.readFileSync(marker, 'utf8'));
    process.kill(-(child.pid as number), 'SIGKILL');
    await exited;
    // Pulumi started the provider in a process group of its own: it outlived the kill.
    expect(fs.existsSync(`/proc/${providerPid}`)).toBe(true);

    const runner = new TenantStackRunner(options);
    const { summary } = await runner.up('tenant-crash', async () => {
      new Quick('quick', { note: 'after the crash' });
      return {};
    });
    expect(summary.result).toBe('succeeded');
    // Killed: gone, or a zombie until whoever adopted it reaps it (bounded wait).
    for (let i = 0; i < 50 && running(providerPid); i++) await sleep(100);
    expect(running(providerPid)).toBe(false);
    // And the stack updates normally from then on.
    const again = await runner.up('tenant-crash', async () => {
      new Quick('quick', { note: 'after the crash' });
      return {};
    });
    expect(again.summary.result).toBe('succeeded');
    await runner.destroy('tenant-crash');
  });
});

/** True while `pid` exists and is not a zombie (state Z: dead, waiting to be reaped). */
function running(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
