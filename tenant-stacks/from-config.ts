import { createHash } from 'node:crypto';
import path from 'node:path';
import type { Config } from '../core/config.ts';
import type { SecretBox } from '../core/secrets.ts';
import { TenantStackRunner, type TenantStackRunnerOptions } from './runner.ts';

const REPO_ROOT = path.resolve(import.meta.dirname, '..');

/** The Pulumi project every tenant stack belongs to. */
export const TENANT_PROJECT = 'deploy-mcp-tenants';

/**
 * Where the embedded default keeps tenant stacks: state in `<dataDir>/pulumi`, work dirs in
 * this repository (the dynamic-provider launcher resolves `@pulumi/pulumi` from there), one
 * folder per data dir, and a passphrase derived from the master key.
 */
export function tenantStackRunnerOptions(config: Config, secrets: SecretBox): TenantStackRunnerOptions {
  return {
    projectName: TENANT_PROJECT,
    stateDir: path.join(config.dataDir, 'pulumi'),
    workRoot: tenantWorkRoot(config.dataDir),
    passphrase: secrets.derive('pulumi-state'),
    pulumiRoot: config.toolsDir,
  };
}

/** The tenant stack runner for `config` (the server's deploy activities and `deploy-mcp audit`). */
export function tenantStackRunner(config: Config, secrets: SecretBox): TenantStackRunner {
  return new TenantStackRunner(tenantStackRunnerOptions(config, secrets));
}

/**
 * The stacks' work folders for `dataDir`, one per data dir: its name plus a digest of its full
 * path (two dirs called `data` differ).
 */
export function tenantWorkRoot(dataDir: string): string {
  const digest = createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 8);
  return path.join(REPO_ROOT, '.data', 'pulumi-work', `${path.basename(dataDir)}-${digest}`);
}
