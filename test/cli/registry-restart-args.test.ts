import { expect, it } from 'vitest';
import { registry } from '../../cli/registry.ts';
import { loadConfig } from '../../core/config.ts';

/** The cluster's runtime settings (as the clean-up job's pod has them, platform/cluster/deployer.ts). */
const clusterEnv = {
  DEPLOY_MCP_RUNTIME: 'kubernetes',
  DEPLOY_MCP_KUBECONFIG: '/nonexistent/kubeconfig',
  DEPLOY_MCP_INGRESS_CLASS: 'traefik',
  DEPLOY_MCP_APPS_DOMAIN: 'apps.example.com',
  DEPLOY_MCP_REGISTRY: '10.0.1.20:5000',
  DEPLOY_MCP_BUILDKIT_ADDRESS: 'tcp://10.0.2.10:1234',
};

it('`registry prune --restart-registry` refuses, before touching anything, what cannot hold the lock or name the registry', async () => {
  const run = (env: Record<string, string>, target: string) =>
    registry(loadConfig(env, '/app'), ['prune', '--restart-registry', target]).catch((e: Error) => e.message);
  // The embedded install: no cluster to restart the registry in.
  expect(await run({}, 'deploy-mcp-system/registry')).toMatch(/needs DEPLOY_MCP_RUNTIME=kubernetes/);
  // SQLite: the job would be a second process on its own file, the builds' lock out of its reach.
  expect(
    await run(
      { ...clusterEnv, DEPLOY_MCP_DATABASE_URL: 'file:/tmp/never-opened.db' },
      'deploy-mcp-system/registry',
    ),
  ).toMatch(/needs the deployer's PostgreSQL database/);
  // A target that is not <namespace>/<deployment>.
  const pg = { ...clusterEnv, DEPLOY_MCP_DATABASE_URL: 'postgres://db.invalid/deploy' };
  for (const bad of ['registry', 'a/b/c', '../x', 'Deploy/Registry'])
    expect(await run(pg, bad)).toMatch(/must be <namespace>\/<deployment>/);
});
