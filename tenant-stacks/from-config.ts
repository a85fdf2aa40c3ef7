import { createHash } from 'node:crypto';
import path from 'node:path';
import type { Config } from '../core/config.ts';
import type { Db } from '../core/db/client.ts';
import type { SecretBox } from '../core/secrets.ts';
import { secretFingerprint } from './audit.ts';
import { TenantStackRunner, type TenantStackRunnerOptions } from './runner.ts';
import { DbStackJournal } from './state-journal.ts';

const REPO_ROOT = path.resolve(import.meta.dirname, '..');

/** The Pulumi project every tenant stack belongs to. */
export const TENANT_PROJECT = 'deploy-mcp-tenants';

/**
 * Where tenant stacks live: state at DEPLOY_MCP_PULUMI_BACKEND_URL (default
 * `file://<dataDir>/pulumi`), PULUMI_HOME in `<dataDir>/pulumi/.pulumi-home`, work dirs in this
 * repository (the dynamic-provider launcher resolves `@pulumi/pulumi` from there), one folder per
 * data dir, and a passphrase derived from the master key. With `db`, every update and the state
 * it left are kept in the product database (`stackJournal`), which `deploy-mcp audit` reads.
 */
export function tenantStackRunnerOptions(
  config: Config,
  secrets: SecretBox,
  db?: Db,
): TenantStackRunnerOptions {
  return {
    projectName: TENANT_PROJECT,
    backendUrl: config.pulumiBackendUrl,
    pulumiHome: path.join(config.dataDir, 'pulumi', '.pulumi-home'),
    workRoot: tenantWorkRoot(config.dataDir),
    passphrase: secrets.derive('pulumi-state'),
    pulumiRoot: config.toolsDir,
    ...(db ? { journal: stackJournal(db, secrets) } : {}),
  };
}

/** The tenant stack runner for `config` (the server's deploy activities and `deploy-mcp audit`). */
export function tenantStackRunner(config: Config, secrets: SecretBox, db?: Db): TenantStackRunner {
  return new TenantStackRunner(tenantStackRunnerOptions(config, secrets, db));
}

/** The product database's copy of every tenant-stack update, secrets fingerprinted with a key from the master key. */
export function stackJournal(db: Db, secrets: SecretBox): DbStackJournal {
  return new DbStackJournal(db, secretFingerprint(secrets.derive('stack-state-fingerprints')));
}

/**
 * The stacks' work folders for `dataDir`, one per data dir: its name plus a digest of its full
 * path (two dirs called `data` differ).
 */
export function tenantWorkRoot(dataDir: string): string {
  const digest = createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 8);
  return path.join(REPO_ROOT, '.data', 'pulumi-work', `${path.basename(dataDir)}-${digest}`);
}
