import fs from 'node:fs';
import path from 'node:path';
import {
  LocalWorkspace,
  type OutputMap,
  PulumiCommand,
  type PulumiFn,
  type Stack,
  type UpdateSummary,
} from '@pulumi/pulumi/automation/index.js';

export type TenantStackRunnerOptions = {
  /** Pulumi project all tenant stacks belong to. */
  projectName: string;
  /** File backend directory (state of every tenant stack). */
  stateDir: string;
  /**
   * Parent of the per-stack work directories. It must sit inside this repository so the
   * dynamic-provider launcher resolves `@pulumi/pulumi` from node_modules.
   */
  workRoot: string;
  /** Passphrase of the file backend's secrets provider. */
  passphrase: string;
  /** Install root whose `bin/` holds the `pulumi` CLI; PATH is searched when omitted. */
  pulumiRoot?: string;
};

/** Runs tenant stacks (inline programs) on a local file backend. Only activities call this. */
export class TenantStackRunner {
  constructor(private readonly options: TenantStackRunnerOptions) {}

  /** Creates or updates `stackName` to match `program`; returns its outputs. */
  async up(
    stackName: string,
    program: PulumiFn,
    onOutput?: (line: string) => void,
  ): Promise<{ outputs: OutputMap; summary: UpdateSummary }> {
    const stack = await this.stack(stackName, program);
    const result = await stack.up(onOutput ? { onOutput } : {});
    return { outputs: result.outputs, summary: result.summary };
  }

  /** Destroys every resource of `stackName` and removes the stack itself. */
  async destroy(stackName: string, onOutput?: (line: string) => void): Promise<void> {
    const stack = await this.stack(stackName, async () => ({}));
    await stack.destroy(onOutput ? { onOutput } : {});
    await stack.workspace.removeStack(stackName);
  }

  /** Update history, newest first: what an auditor reads. */
  async history(stackName: string, pageSize = 20): Promise<UpdateSummary[]> {
    const stack = await this.stack(stackName, async () => ({}));
    return stack.history(pageSize);
  }

  /** The stack's full state (resources and their inputs/outputs), for audits and diffs. */
  async exportState(stackName: string): Promise<unknown> {
    const stack = await this.stack(stackName, async () => ({}));
    return (await stack.exportStack()).deployment;
  }

  /** Names of the stacks in the backend. */
  async listStacks(): Promise<string[]> {
    const ws = await LocalWorkspace.create(
      await this.workspaceOptions(path.join(this.options.workRoot, '_list')),
    );
    return (await ws.listStacks()).map((s) => s.name);
  }

  private async stack(stackName: string, program: PulumiFn): Promise<Stack> {
    const workDir = path.join(this.options.workRoot, stackName);
    return LocalWorkspace.createOrSelectStack(
      { stackName, projectName: this.options.projectName, program },
      await this.workspaceOptions(workDir),
    );
  }

  private async workspaceOptions(workDir: string) {
    const o = this.options;
    fs.mkdirSync(o.stateDir, { recursive: true });
    fs.mkdirSync(workDir, { recursive: true });
    const pulumiHome = path.join(o.stateDir, '.pulumi-home');
    fs.mkdirSync(pulumiHome, { recursive: true });
    const pulumiCommand = await PulumiCommand.get(o.pulumiRoot ? { root: o.pulumiRoot } : {});
    return {
      workDir,
      pulumiHome,
      pulumiCommand,
      projectSettings: {
        name: o.projectName,
        runtime: 'nodejs' as const,
        backend: { url: `file://${o.stateDir}` },
      },
      envVars: {
        PULUMI_BACKEND_URL: `file://${o.stateDir}`,
        PULUMI_CONFIG_PASSPHRASE: o.passphrase,
        PULUMI_SKIP_UPDATE_CHECK: 'true',
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: 'true',
      },
    };
  }
}
