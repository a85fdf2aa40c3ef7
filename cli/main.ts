import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { dropServerSettings, serverSettings } from '../core/child-env.ts';
import { ConfigError, loadConfig } from '../core/config.ts';
import { migrate } from '../core/db/migrate.ts';
import { DomainError } from '../core/errors.ts';
import { createLogger } from '../core/log.ts';
import { connectTemporal } from '../workers/client.ts';
import { PRODUCT_TASK_QUEUE } from '../workers/task-queues.ts';
import { accounts } from './accounts.ts';
import { AUDIT_USAGE, audit } from './audit.ts';
import { CLUSTER_USAGE, cluster } from './cluster.ts';
import { GITHUB_USAGE, github } from './github.ts';
import { LOGIN_CODE_USAGE, loginCode } from './login-code.ts';
import { PLATFORM_USAGE, platform } from './platform.ts';
import { REGISTRY_USAGE, registry } from './registry.ts';
import { ROLES, type Role, serve } from './serve.ts';

const USAGE = `Usage: deploy-mcp <command> [options]

Commands:
  serve [--role all|server|worker|deployer-server|deployer-worker[,…]]
                     Run roles (default: all, every role in one process; a comma list runs several).
  migrate            Apply pending database migrations.
  doctor             Run the selfCheck workflow: Temporal, a worker and the database.
  users create <email>
                     Create a user (with project "default").
  keys create <email> [--name N]
                     Create an API key; the key alone is the last line of output.
  keys list <email>  List a user's API keys (prefix, name, last use, state).
  keys revoke <prefix>
                     Revoke an API key; it stops working at once.
  git-tokens revoke <prefix>
                     Revoke a git token (mlg_ + 10 characters, as in the remote URL).
  ${LOGIN_CODE_USAGE}
                     Print a one-time code to sign in on the web pages (10 minutes, once);
                     creates the user if needed. The code alone is the last line.
  ${GITHUB_USAGE}
                     Link a user to the GitHub account (user or organization) whose
                     installation of our GitHub App they deploy from.
  ${AUDIT_USAGE}
                     A service's releases, its stack's update history and the resource
                     diff between two releases (default: current vs previous); secrets
                     show as [secret]. Read-only; deleted services included.
  ${CLUSTER_USAGE}
                     A one-node Kubernetes cluster on 127.0.0.1 (state in <data dir>/cluster):
                     up starts or adopts it and prints the kubeconfig; down stops it and
                     removes its pods, mounts, cgroups and bridge (--purge: its state too).
  ${PLATFORM_USAGE}
                     The platform stack (platform/: servers, load balancer, k3s, cluster
                     objects) inline through the Automation API, with Pulumi.<stack>.yaml's
                     config; up and destroy need --yes.
  ${REGISTRY_USAGE}
                     Delete the registry's images no kept release needs (deleted services,
                     failed builds, releases past the newest N per service, default
                     DEPLOY_MCP_KEEP_RELEASES); the serving release's image always stays.

Configuration comes from DEPLOY_MCP_* environment variables; see .env.example.`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === 'help') {
    console.log(USAGE);
    return command ? 0 : 2;
  }
  const config = loadConfig({ ...process.env, ...serverSettings(process.env) });
  // Parsed once: no child process (Pulumi's CLI merges our whole environment into its own) may
  // see the server's settings, the master key above all.
  dropServerSettings(process.env);
  const log = createLogger({ level: config.logLevel });

  switch (command) {
    case 'serve': {
      const { values } = parseArgs({ args: rest, options: { role: { type: 'string', default: 'all' } } });
      const roles = values.role.split(',').map((r) => r.trim());
      const unknown = roles.filter((r) => !ROLES.includes(r as Role));
      if (unknown.length || roles.length === 0) {
        console.error(`unknown role "${unknown.join(',')}"; expected one or more of: ${ROLES.join(', ')}`);
        return 2;
      }
      await serve(config, roles as Role[], log);
      return 0;
    }
    case 'migrate': {
      parseArgs({ args: rest, options: {} });
      const result = await migrate(config.databaseUrl);
      console.log(
        result.applied.length
          ? `applied ${result.applied.length} migration(s): ${result.applied.join(', ')}`
          : `database is up to date (${result.alreadyApplied} migration(s) applied)`,
      );
      return 0;
    }
    case 'doctor': {
      parseArgs({ args: rest, options: {} });
      const address = config.temporal.address ?? `127.0.0.1:${config.temporal.devServerPort}`;
      const temporal = await connectTemporal(address, config.temporal.namespace);
      try {
        const result = await temporal.client.workflow.execute('selfCheck', {
          taskQueue: PRODUCT_TASK_QUEUE,
          workflowId: `self-check-${randomUUID()}`,
          args: ['doctor'],
          workflowExecutionTimeout: '30 seconds',
        });
        console.log(JSON.stringify(result));
        return 0;
      } finally {
        await temporal.close();
      }
    }
    case 'users':
    case 'keys':
    case 'git-tokens':
      await accounts(config, command, rest);
      return 0;
    case 'audit':
      await audit(config, rest);
      return 0;
    case 'login-code':
      await loginCode(config, rest);
      return 0;
    case 'github':
      await github(config, rest);
      return 0;
    case 'cluster': {
      const code = await cluster(config, rest);
      // The cluster's daemons are children of this process (in process groups of their own):
      // exit without waiting for them.
      process.exit(code);
      return code;
    }
    case 'platform':
      return platform(config, rest);
    case 'registry':
      return registry(config, rest);
    default:
      console.error(`unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof DomainError) {
      console.error(err.message);
      process.exitCode = 1;
    } else if (err instanceof ConfigError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error((err as Error).message);
      process.exitCode = 2;
    } else {
      console.error(err);
      process.exitCode = 1;
    }
  },
);
