import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type {
  LocalWorkspace,
  LocalWorkspaceOptions,
  OutputMap,
  PulumiCommand,
  PulumiFn,
  Stack,
  UpdateSummary,
} from '@pulumi/pulumi/automation/index.js';
import type { AuditState } from './audit.ts';
import { killOrphanedPlugins, locksAreStale } from './stale-locks.ts';

/**
 * The Automation API, loaded with the first stack operation: it brings all of `@pulumi/pulumi`
 * (and TypeScript, for its closure serialization), about 100 MiB a server that runs no update
 * need not hold.
 */
const automation = () => import('@pulumi/pulumi/automation/index.js');

/**
 * The folder holding our `pulumi-resource-pulumi-nodejs`, the dynamic-provider plugin's launcher
 * (provider-plugin/README.md): each stack's project names it (Pulumi.yaml `plugins.providers`),
 * so the engine starts it instead of the one on PATH.
 */
export const PROVIDER_PLUGIN_DIR = path.join(import.meta.dirname, 'provider-plugin');

export type TenantStackRunnerOptions = {
  /** Pulumi project all tenant stacks belong to. */
  projectName: string;
  /**
   * Where the stacks' state lives (Pulumi's backend URL): `file://<dir>` (the embedded default),
   * `s3://<bucket>`, `https://api.pulumi.com`, … Credentials for it come from the environment.
   */
  backendUrl: string;
  /**
   * Parent of the per-stack work directories. It must sit inside this repository so the
   * dynamic-provider launcher resolves `@pulumi/pulumi` from node_modules.
   */
  workRoot: string;
  /** Passphrase of the stacks' secrets provider. */
  passphrase: string;
  /** PULUMI_HOME for updates; default: `.pulumi-home` in a `file://` backend's directory, else in `workRoot`. */
  pulumiHome?: string;
  /** Install root whose `bin/` holds the `pulumi` CLI; PATH is searched when omitted. */
  pulumiRoot?: string;
  /** Keeps each update's record and the state it left, for audits; none: nothing is kept. */
  journal?: StackJournal;
  /**
   * Which launcher starts the dynamic-provider plugin: ours (`provider-plugin/`, the default) or
   * Pulumi's, found on PATH (`npm run bench -- provider` compares them).
   */
  providerPlugin?: 'ours' | 'pulumi';
};

/** An update as the backend's history records it (message, environment and config left out). */
export type StackUpdateRecord = Pick<UpdateSummary, 'version' | 'kind' | 'result' | 'startTime'> & {
  endTime: Date | undefined;
  resourceChanges: Record<string, number>;
};

/** An update the journal kept, and the state it left (undefined when that was not kept). */
export type KeptUpdate = { update: StackUpdateRecord; state: AuditState | undefined };

/**
 * The product's own copy of every update the runner runs and the state it left: most backends
 * keep only a stack's current state, and removing a stack deletes its history.
 */
export interface StackJournal {
  /**
   * Keeps `update` and the state it left: `deployment` as `exportStack()` returns it (secret
   * values in plaintext; the journal keeps none of them), undefined when unknown.
   */
  record(stackName: string, update: StackUpdateRecord, deployment: unknown): Promise<void>;
  /** The kept updates of `stackName`, oldest first. */
  entries(stackName: string): Promise<KeptUpdate[]>;
}

/** What the backend holds of a stack, read through the Automation API. */
export type StackReading =
  | { exists: false }
  | {
      exists: true;
      /** Every update the backend records, oldest first. */
      history: StackUpdateRecord[];
      /** The current state (`exportStack()`): secret values in plaintext. */
      deployment: unknown;
      outputs: OutputMap;
    };

/** Runs tenant stacks (inline programs) on the configured backend. Only activities call `up`/`destroy`. */
export class TenantStackRunner {
  private readonly options: TenantStackRunnerOptions;

  constructor(options: TenantStackRunnerOptions) {
    this.options = options;
  }

  private pulumiCommand: Promise<PulumiCommand> | undefined;

  /** Stacks already selected (or created), by name: reused by later updates of the same stack. */
  private readonly stacks = new Map<string, Promise<Stack>>();

  /**
   * The update (or destroy) of each stack this process runs or has queued last: a stack's
   * updates run one after another here, so a clean-up that starts while a deployment's update
   * still waits on its health check runs after it instead of failing on the stack's lock.
   */
  private readonly running = new Map<string, Promise<unknown>>();

  /** Runs `task` after every update of `stackName` this process started before it. */
  private serialized<T>(stackName: string, task: () => Promise<T>): Promise<T> {
    const before = this.running.get(stackName) ?? Promise.resolve();
    const mine = before.catch(() => undefined).then(task);
    const tail = mine.catch(() => undefined);
    this.running.set(stackName, tail);
    void tail.then(() => {
      if (this.running.get(stackName) === tail) this.running.delete(stackName);
    });
    return mine;
  }

  /** Resolves once no update of `stackName` this process started is running or queued. */
  async settled(stackName: string): Promise<void> {
    for (let p = this.running.get(stackName); p; p = this.running.get(stackName)) await p;
  }

  /**
   * Creates or updates `stackName` to match `program`; returns its outputs.
   *
   * One `pulumi up` plus two reads run in parallel after it: `stack history` (the update's
   * record, secrets not decrypted) and `stack export` (the state it left, for the journal; the
   * outputs are read from it). The Automation API's own `up` would read the outputs twice and
   * the history once more, one after the other (about 1 s here); the stack object is kept for
   * the next update instead of being selected again (`pulumi stack select`).
   */
  up(
    stackName: string,
    program: PulumiFn,
    onOutput?: (line: string) => void,
  ): Promise<{ outputs: OutputMap; summary: UpdateSummary }> {
    return this.serialized(stackName, () => this.upNow(stackName, program, onOutput));
  }

  private async upNow(
    stackName: string,
    program: PulumiFn,
    onOutput?: (line: string) => void,
  ): Promise<{ outputs: OutputMap; summary: UpdateSummary }> {
    const stack = await this.stack(stackName, program);
    const began = Date.now();
    try {
      await this.unlocked(stackName, stack, () =>
        withoutReads(stack).up({ program, ...(onOutput ? { onOutput } : {}) }),
      );
    } catch (err) {
      this.stacks.delete(stackName); // selected again next time (the stack may have been removed)
      await this.keepFailed(stackName, stack, began);
      throw new Error(`the stack update failed: ${updateErrors((err as Error).message)}`, { cause: err });
    }
    const [summary, { deployment }] = await Promise.all([
      stack.info(false).then((u) => u ?? noStack(stackName)),
      stack.exportStack(),
    ]);
    await this.options.journal?.record(stackName, updateRecord(summary), deployment);
    return { outputs: stackOutputs(deployment), summary };
  }

  /**
   * Destroys every resource of `stackName` and removes the stack itself. Before the removal
   * (which deletes the backend's history) the journal gets any update record it lacks.
   */
  destroy(stackName: string, onOutput?: (line: string) => void): Promise<void> {
    return this.serialized(stackName, () => this.destroyNow(stackName, onOutput));
  }

  private async destroyNow(stackName: string, onOutput?: (line: string) => void): Promise<void> {
    const stack = await this.stack(stackName, async () => ({}));
    const began = Date.now();
    let result: Awaited<ReturnType<Stack['destroy']>>;
    try {
      result = await this.unlocked(stackName, stack, () => stack.destroy(onOutput ? { onOutput } : {}));
    } catch (err) {
      await this.keepFailed(stackName, stack, began);
      throw err;
    }
    await this.keep(stackName, stack, result.summary);
    const journal = this.options.journal;
    if (journal) {
      const history = historyOf(await stack.history(undefined, undefined, false));
      for (const u of unkept(history, await journal.entries(stackName)))
        await journal.record(stackName, u, undefined);
    }
    this.stacks.delete(stackName);
    await stack.workspace.removeStack(stackName);
  }

  /**
   * Runs an update of `stack`. When it is refused because an update that died (the server was
   * killed mid `pulumi up`) left its lock, the lock is cleared (`pulumi cancel`), the plugins
   * that update left running are killed, and the update runs once more. The dead update's
   * pending operations stay in the state; the next update reports and drops them.
   */
  private async unlocked<T>(stackName: string, stack: Stack, update: () => Promise<T>): Promise<T> {
    try {
      return await update();
    } catch (err) {
      const { ConcurrentUpdateError } = await automation();
      if (!(err instanceof ConcurrentUpdateError) || !locksAreStale(err.message)) throw err;
      killOrphanedPlugins(path.join(this.options.workRoot, stackName));
      await stack.cancel();
      return update();
    }
  }

  /** Hands the journal `summary`'s update and the state it left (`exportStack()`). */
  private async keep(stackName: string, stack: Stack, summary: UpdateSummary): Promise<void> {
    if (!this.options.journal) return;
    const { deployment } = await stack.exportStack();
    await this.options.journal.record(stackName, updateRecord(summary), deployment);
  }

  /**
   * After a failed update: keeps it when the backend recorded it (an update refused before it
   * started, by a lock, leaves the newest record an earlier one's). Best effort: the update's
   * own error is the one to report.
   */
  private async keepFailed(stackName: string, stack: Stack, began: number): Promise<void> {
    if (!this.options.journal) return;
    try {
      const last = await stack.info(false);
      if (last && last.startTime.getTime() >= Math.floor(began / 1000) * 1000) {
        await this.keep(stackName, stack, last);
      }
    } catch {}
  }

  /** What the backend holds of `stackName` (history, current state, outputs); changes nothing. */
  async read(stackName: string): Promise<StackReading> {
    return this.readOnly<StackReading>(
      async (ws) => {
        const stack = await selectExisting(stackName, ws);
        if (!stack) return { exists: false };
        const history = historyOf(await stack.history(undefined, undefined, false));
        const { deployment } = await stack.exportStack();
        return { exists: true, history, deployment, outputs: await stack.outputs() };
      },
      () => ({ exists: false }),
    );
  }

  /** Update history, newest first (`stack.history()`); throws when the stack does not exist. */
  async history(stackName: string, pageSize = 20): Promise<UpdateSummary[]> {
    return this.readOnly(
      async (ws) => (await (await automation()).Stack.select(stackName, ws)).history(pageSize, 1, false),
      () => noStack(stackName),
    );
  }

  /** The stack's current state (`exportStack()`: secret values in plaintext). */
  async exportState(stackName: string): Promise<unknown> {
    return this.readOnly(
      async (ws) => (await (await (await automation()).Stack.select(stackName, ws)).exportStack()).deployment,
      () => noStack(stackName),
    );
  }

  /** The stack's current outputs (`stack.outputs()`); throws when the stack does not exist. */
  async outputs(stackName: string): Promise<OutputMap> {
    return this.readOnly(
      async (ws) => (await (await automation()).Stack.select(stackName, ws)).outputs(),
      () => noStack(stackName),
    );
  }

  /** Names of the project's stacks in the backend. */
  async listStacks(): Promise<string[]> {
    return this.readOnly(
      async (ws) => (await ws.listStacks()).map((s) => s.name),
      () => [],
    );
  }

  /**
   * Runs `read` in a workspace of its own: a temporary work dir and PULUMI_HOME, removed after.
   * Stacks are selected without `--create` (`Stack.select`), and the selection the CLI writes
   * (PULUMI_HOME/workspaces) lands in the temporary home, so a read creates no stack and writes
   * nothing beside the server's updates; read commands take no lock. A `file://` backend whose
   * directory holds no state yet (no `.pulumi`) is answered by `empty`, without the CLI, which
   * would initialize it.
   */
  private async readOnly<T>(read: (ws: LocalWorkspace) => Promise<T>, empty: () => T): Promise<T> {
    const stateDir = fileBackendDir(this.options.backendUrl);
    if (stateDir !== undefined && !fs.existsSync(path.join(stateDir, '.pulumi'))) return empty();
    const { LocalWorkspace } = await automation();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'deploy-mcp-stack-read-'));
    try {
      return await read(
        await LocalWorkspace.create(await this.workspaceOptions(dir, path.join(dir, 'pulumi-home'))),
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  private async stack(stackName: string, program: PulumiFn): Promise<Stack> {
    let selected = this.stacks.get(stackName);
    if (!selected) {
      selected = this.selectOrCreate(stackName, program);
      this.stacks.set(stackName, selected);
      selected.catch(() => this.stacks.delete(stackName));
    }
    const stack = await selected;
    stack.workspace.program = program; // what a command that runs no program of its own gets
    return stack;
  }

  private async selectOrCreate(stackName: string, program: PulumiFn): Promise<Stack> {
    const o = this.options;
    const stateDir = fileBackendDir(o.backendUrl);
    if (stateDir !== undefined) fs.mkdirSync(stateDir, { recursive: true });
    const pulumiHome = o.pulumiHome ?? path.join(stateDir ?? o.workRoot, '.pulumi-home');
    const { LocalWorkspace } = await automation();
    return LocalWorkspace.createOrSelectStack(
      { stackName, projectName: o.projectName, program },
      await this.workspaceOptions(path.join(o.workRoot, stackName), pulumiHome),
    );
  }

  private async workspaceOptions(workDir: string, pulumiHome: string): Promise<LocalWorkspaceOptions> {
    const o = this.options;
    fs.mkdirSync(workDir, { recursive: true });
    fs.mkdirSync(pulumiHome, { recursive: true });
    this.pulumiCommand ??= automation().then(({ PulumiCommand }) =>
      PulumiCommand.get(o.pulumiRoot ? { root: o.pulumiRoot } : {}),
    );
    return {
      workDir,
      pulumiHome,
      pulumiCommand: await this.pulumiCommand,
      projectSettings: {
        name: o.projectName,
        runtime: 'nodejs',
        backend: { url: o.backendUrl },
        // Pulumi.yaml's `plugins` (not in the SDK's ProjectSettings type; written out as given).
        ...(o.providerPlugin === 'pulumi'
          ? {}
          : { plugins: { providers: [{ name: 'pulumi-nodejs', path: PROVIDER_PLUGIN_DIR }] } }),
      },
      envVars: {
        PULUMI_BACKEND_URL: o.backendUrl,
        PULUMI_CONFIG_PASSPHRASE: o.passphrase,
        PULUMI_SKIP_UPDATE_CHECK: 'true',
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: 'true',
      },
    };
  }
}

/**
 * `stack` whose `up` skips the reads the Automation API runs after it (`outputs()`, two
 * `pulumi stack output`, and `info()`): the runner reads what it needs itself, in parallel.
 */
function withoutReads(stack: Stack): Stack {
  return Object.create(stack, {
    outputs: { value: async () => ({}) },
    info: { value: async () => undefined },
  }) as Stack;
}

/**
 * A stack's outputs as `stack.outputs()` gives them, read from its exported state (the root
 * stack resource's outputs; `exportStack()` shows secrets, which Pulumi marks with its secret
 * signature).
 */
export function stackOutputs(deployment: unknown): OutputMap {
  const resources = (deployment as { resources?: { type: string; outputs?: Record<string, unknown> }[] })
    ?.resources;
  const root = resources?.find((r) => r.type === 'pulumi:pulumi:Stack');
  const outputs: OutputMap = {};
  for (const [key, raw] of Object.entries(root?.outputs ?? {})) {
    const { value, secret } = unsecret(raw);
    outputs[key] = { value, secret };
  }
  return outputs;
}

/** Pulumi's marker of a secret value in a state ("4dabf…" = "1b470…"), shown with its plaintext. */
const SECRET_SIG = '4dabf18193072939515e22adb298388d';
const SECRET_VALUE = '1b47061264138c4ac30d75fd1eb44270';

function unsecret(v: unknown): { value: unknown; secret: boolean } {
  if (Array.isArray(v)) {
    const items = v.map(unsecret);
    return { value: items.map((i) => i.value), secret: items.some((i) => i.secret) };
  }
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if (o[SECRET_SIG] === SECRET_VALUE) {
      const plain = o.plaintext;
      return { value: typeof plain === 'string' ? JSON.parse(plain) : o.value, secret: true };
    }
    const entries = Object.entries(o).map(([k, x]) => [k, unsecret(x)] as const);
    return {
      value: Object.fromEntries(entries.map(([k, x]) => [k, x.value])),
      secret: entries.some(([, x]) => x.secret),
    };
  }
  return { value: v, secret: false };
}

/** The directory of a `file://` backend URL; undefined for other backends. */
export function fileBackendDir(backendUrl: string): string | undefined {
  return backendUrl.startsWith('file://') ? backendUrl.slice('file://'.length) : undefined;
}

/**
 * The records of `history` that `kept` lacks, oldest first. An update is the same when its
 * version, kind, result and times are (the file backend's versions are all 0); equal ones match
 * in order.
 */
export function unkept(history: StackUpdateRecord[], kept: KeptUpdate[]): StackUpdateRecord[] {
  const matched = matchKept(history, kept);
  return history.filter((_, i) => !matched[i]);
}

/** For each record of `history` (oldest first), the kept update that is the same one, if any. */
export function matchKept(history: StackUpdateRecord[], kept: KeptUpdate[]): (KeptUpdate | undefined)[] {
  const pending = new Map<string, KeptUpdate[]>();
  for (const k of kept) {
    const id = updateId(k.update);
    pending.set(id, [...(pending.get(id) ?? []), k]);
  }
  return history.map((u) => pending.get(updateId(u))?.shift());
}

function updateId(u: StackUpdateRecord): string {
  return [u.version, u.kind, u.result, u.startTime.getTime(), u.endTime?.getTime() ?? ''].join('|');
}

function updateRecord(u: UpdateSummary): StackUpdateRecord {
  return {
    version: u.version ?? 0,
    kind: u.kind,
    result: u.result,
    startTime: u.startTime,
    endTime: u.endTime as Date | undefined,
    resourceChanges: { ...(u.resourceChanges ?? {}) } as Record<string, number>,
  };
}

/** `stack.history()` (newest first) as records, oldest first. */
function historyOf(summaries: UpdateSummary[]): StackUpdateRecord[] {
  return summaries.map(updateRecord).reverse();
}

function noStack(stackName: string): never {
  throw new Error(`no stack named '${stackName}' found`);
}

async function selectExisting(stackName: string, ws: LocalWorkspace): Promise<Stack | undefined> {
  const { Stack, StackNotFoundError } = await automation();
  try {
    return await Stack.select(stackName, ws);
  } catch (err) {
    if (err instanceof StackNotFoundError) return undefined;
    throw err;
  }
}

/**
 * The resources' own errors from a failed `pulumi up` (its Diagnostics section), without the
 * progress lines, warnings and "update failed": what a user can act on, in a few lines.
 */
export function updateErrors(output: string): string {
  const diagnostics = output.slice(output.indexOf('Diagnostics:'));
  const errors = [
    ...new Set(
      diagnostics
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l.startsWith('error: ') && l !== 'error: update failed')
        .map((l) => l.slice('error: '.length)),
    ),
  ];
  const text = errors.length ? errors.slice(0, 5).join('; ') : output.split('\n').slice(0, 3).join(' ');
  return text.length > 800 ? `${text.slice(0, 800)}…` : text;
}
