import { createDecipheriv, pbkdf2Sync } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import {
  ConcurrentUpdateError,
  LocalWorkspace,
  type OutputMap,
  PulumiCommand,
  type PulumiFn,
  type Stack,
  type UpdateSummary,
} from '@pulumi/pulumi/automation/index.js';
import { killOrphanedPlugins, locksAreStale } from './stale-locks.ts';

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

/** A resource as a checkpoint stores it; secret values stay encrypted. */
export type StateResource = {
  urn: string;
  type: string;
  id?: string;
  inputs?: Record<string, unknown>;
  outputs?: Record<string, unknown>;
  /** Set on a replaced resource still awaiting deletion. */
  delete?: boolean;
};

/** A stack's state (Pulumi's "deployment") as the file backend checkpoints it. */
export type StackState = {
  resources?: StateResource[];
  secrets_providers?: { type: string; state?: { salt?: string } };
};

/** What the file backend records about one update (its message, environment and config left out). */
export type StackUpdateRecord = Pick<UpdateSummary, 'kind' | 'result' | 'startTime'> & {
  endTime: Date | undefined;
  resourceChanges: Record<string, number>;
};

/** One kept update of a stack and the state it left. */
export type StackCheckpoint = {
  /** 1 for the oldest kept checkpoint, counting up (the file backend records 0 for every update). */
  version: number;
  /** When the backend wrote it. */
  savedAt: Date;
  /** The update's record; undefined for the backups of a removed stack. */
  update: StackUpdateRecord | undefined;
  /** The state after the update; undefined when no copy was kept. */
  state: StackState | undefined;
};

/** Runs tenant stacks (inline programs) on a local file backend. Only activities call this. */
export class TenantStackRunner {
  constructor(private readonly options: TenantStackRunnerOptions) {}

  /** Secret keys derived per state salt (the derivation is deliberately slow). */
  private readonly keys = new Map<string, Buffer>();

  /** Creates or updates `stackName` to match `program`; returns its outputs. */
  async up(
    stackName: string,
    program: PulumiFn,
    onOutput?: (line: string) => void,
  ): Promise<{ outputs: OutputMap; summary: UpdateSummary }> {
    const stack = await this.stack(stackName, program);
    try {
      const result = await this.unlocked(stackName, stack, () => stack.up(onOutput ? { onOutput } : {}));
      return { outputs: result.outputs, summary: result.summary };
    } catch (err) {
      throw new Error(`the stack update failed: ${updateErrors((err as Error).message)}`, { cause: err });
    }
  }

  /** Destroys every resource of `stackName` and removes the stack itself. */
  async destroy(stackName: string, onOutput?: (line: string) => void): Promise<void> {
    const stack = await this.stack(stackName, async () => ({}));
    await this.unlocked(stackName, stack, () => stack.destroy(onOutput ? { onOutput } : {}));
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
      if (!(err instanceof ConcurrentUpdateError) || !locksAreStale(err.message)) throw err;
      killOrphanedPlugins(path.join(this.options.workRoot, stackName));
      await stack.cancel();
      return update();
    }
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

  /**
   * The stack's kept updates, oldest first, read from the file backend's folders: no CLI, no
   * lock, nothing written, so it is safe beside a running update. `.pulumi/history/` keeps
   * each update's record and a copy of the state it left; `pulumi stack rm` (our `destroy`)
   * deletes that folder, so for a removed stack the state backups in `.pulumi/backups/` (one
   * per saved state, kept by `stack rm`) are returned instead, without update records.
   */
  async checkpoints(
    stackName: string,
  ): Promise<{ stack: 'live' | 'removed' | 'absent'; checkpoints: StackCheckpoint[] }> {
    const root = path.join(this.options.stateDir, '.pulumi');
    const project = this.options.projectName;
    const live = ['', '.gz'].some((gz) =>
      fs.existsSync(path.join(root, 'stacks', project, `${stackName}.json${gz}`)),
    );
    const dir = path.join(root, live ? 'history' : 'backups', project, stackName);
    const files = fs.existsSync(dir) ? fs.readdirSync(dir) : [];
    // history: "<stack>-<nanos>.history.json" + "<stack>-<nanos>.checkpoint.json";
    // backups: "<stack>.<nanos>.json" (each optionally .gz).
    const pattern = live ? /^(?<stamp>\d+)\.history\.json(\.gz)?$/ : /^(?<stamp>\d+)\.json(\.gz)?$/;
    const prefix = live ? `${stackName}-` : `${stackName}.`;
    const stamps = files
      .filter((f) => f.startsWith(prefix))
      .flatMap((f) => pattern.exec(f.slice(prefix.length))?.groups?.stamp ?? [])
      .sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1));
    const read = (name: string): unknown => {
      for (const gz of ['', '.gz']) {
        const file = path.join(dir, `${name}${gz}`);
        if (!fs.existsSync(file)) continue;
        const bytes = fs.readFileSync(file);
        return JSON.parse((gz ? zlib.gunzipSync(bytes) : bytes).toString('utf8'));
      }
      return undefined; // written after its record, or never
    };
    const checkpoints = stamps.map((stamp, i): StackCheckpoint => {
      const record = live ? (read(`${prefix}${stamp}.history.json`) as HistoryFile | undefined) : undefined;
      const copy = read(live ? `${prefix}${stamp}.checkpoint.json` : `${prefix}${stamp}.json`) as
        | { checkpoint?: { latest?: StackState } }
        | undefined;
      return {
        version: i + 1,
        savedAt: new Date(Number(BigInt(stamp) / 1_000_000n)),
        update: record && {
          kind: record.kind,
          result: record.result,
          startTime: new Date(record.startTime * 1000),
          endTime: record.endTime ? new Date(record.endTime * 1000) : undefined,
          resourceChanges: record.resourceChanges ?? {},
        },
        state: copy?.checkpoint?.latest ?? (copy ? {} : undefined),
      };
    });
    return { stack: live ? 'live' : checkpoints.length ? 'removed' : 'absent', checkpoints };
  }

  /**
   * Opens secret values of a checkpointed state with this backend's passphrase, as Pulumi's
   * passphrase provider does: key = PBKDF2-SHA256(passphrase, salt, 1,000,000 rounds), values
   * "v1:<nonce>:<AES-256-GCM ciphertext>". Throws when the passphrase is not the state's.
   */
  secretOpener(state: StackState): (ciphertext: string) => string {
    const salt = state.secrets_providers?.state?.salt;
    if (state.secrets_providers?.type !== 'passphrase' || !salt) {
      throw new Error('the state has no passphrase secrets provider');
    }
    let key = this.keys.get(salt);
    if (!key) {
      const [, saltB64, ...check] = salt.split(':');
      key = pbkdf2Sync(
        this.options.passphrase,
        Buffer.from(saltB64 ?? '', 'base64'),
        1_000_000,
        32,
        'sha256',
      );
      let ok = false;
      try {
        ok = decryptSecret(key, check.join(':')) === 'pulumi';
      } catch {}
      if (!ok) throw new Error('the passphrase does not open this stack state (another master key?)');
      this.keys.set(salt, key);
    }
    const k = key;
    return (ciphertext) => decryptSecret(k, ciphertext);
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

type HistoryFile = {
  kind: UpdateSummary['kind'];
  result: UpdateSummary['result'];
  /** Unix seconds. */
  startTime: number;
  endTime?: number;
  resourceChanges?: Record<string, number>;
};

function decryptSecret(key: Buffer, value: string): string {
  const [version, nonce, sealed] = value.split(':');
  if (version !== 'v1' || !nonce || !sealed) throw new Error('not a Pulumi passphrase ciphertext');
  const bytes = Buffer.from(sealed, 'base64');
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(nonce, 'base64'));
  decipher.setAuthTag(bytes.subarray(bytes.length - 16));
  return Buffer.concat([decipher.update(bytes.subarray(0, bytes.length - 16)), decipher.final()]).toString(
    'utf8',
  );
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
