import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tenantRoleBinding } from '../../tenant-stacks/kubernetes/deployer-access.ts';
import {
  DEPLOYER_SA,
  type DeployerAccess,
  deployerAccess,
  kubectl,
  type TestCluster,
  useTestCluster,
} from '../support/cluster.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';

/**
 * The deployer's narrow access (tenant-stacks/kubernetes/deployer-access.ts), applied to the real
 * one-node cluster exactly as the platform program declares it, and exercised with the
 * ServiceAccount's own token: it manages tenants' namespaces and nothing else. Refusals are
 * server-side dry runs where a mistake would create something (admission runs on dry runs too).
 * The whole product on this access is test/kubernetes/e2e.test.ts.
 */
describe("the deployer's access on a real cluster: tenants' namespaces only", () => {
  const work = scratchDir('k8s-access', path.join(repoRoot, '.data', 'test'));
  let cluster: TestCluster;
  let access: DeployerAccess;
  const tenant = `tenant-access-${randomBytes(4).toString('hex')}`;

  const asDeployer = (args: string[], input?: string) =>
    kubectl({ kubeconfigPath: access.kubeconfigPath, context: 'deployer' }, args, input);
  /** The error of a command the deployer must not be able to run. */
  const refusal = (args: string[], input?: string) =>
    asDeployer(args, input).then(
      (out) => `allowed: ${out}`,
      (err: Error) => err.message,
    );
  const namespace = (name: string, labels: Record<string, string>) =>
    JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } });
  const restricted = { 'deploy-mcp.user': 'u1', 'pod-security.kubernetes.io/enforce': 'restricted' };

  beforeAll(async () => {
    cluster = await useTestCluster();
    access = await deployerAccess(cluster, path.join(work.dir, 'kube'));
  }, 300_000);

  afterAll(async () => {
    await kubectl(cluster, ['delete', 'namespace', tenant, '--ignore-not-found', '--wait=false']).catch(
      () => undefined,
    );
    await cluster?.release();
    work.cleanup();
  }, 120_000);

  it('reads no secret, pod or log outside tenants, and cannot grant itself more', async () => {
    for (const ns of ['kube-system', DEPLOYER_SA.namespace, 'default'])
      expect(await refusal(['get', 'secrets', '-n', ns])).toMatch(/Forbidden|cannot list resource "secrets"/);
    expect(await refusal(['get', 'pods', '-n', 'kube-system'])).toMatch(/cannot list resource "pods"/);
    expect(await refusal(['get', 'secrets', '-A'])).toMatch(/cannot list resource "secrets"/);
    expect(
      await refusal([
        'create',
        'clusterrolebinding',
        'escalate',
        '--clusterrole=cluster-admin',
        `--serviceaccount=${DEPLOYER_SA.namespace}:${DEPLOYER_SA.name}`,
        '--dry-run=server',
      ]),
    ).toMatch(/cannot create resource "clusterrolebindings"/);
  });

  it('creates, changes and deletes only tenant namespaces, and only with Pod Security "restricted"', async () => {
    expect(await refusal(['create', 'namespace', 'not-a-tenant', '--dry-run=server'])).toMatch(
      /only create, change or delete tenant namespaces/,
    );
    const privileged = namespace(`${tenant}-x`, {
      'deploy-mcp.user': 'u1',
      'pod-security.kubernetes.io/enforce': 'privileged',
    });
    expect(await refusal(['create', '--dry-run=server', '-f', '-'], privileged)).toMatch(/tenant namespaces/);
    // Unlabelled, even when named like one.
    expect(await refusal(['create', 'namespace', `${tenant}-y`, '--dry-run=server'])).toMatch(
      /tenant namespaces/,
    );
    // An existing namespace cannot be turned into a tenant's, nor deleted.
    expect(
      await refusal(['label', 'namespace', 'kube-system', 'deploy-mcp.user=u1', '--dry-run=server']),
    ).toMatch(/tenant namespaces/);
    // (default and kube-system are protected for everyone; the platform's own namespace is not.)
    expect(await refusal(['delete', 'namespace', DEPLOYER_SA.namespace, '--dry-run=server'])).toMatch(
      /tenant namespaces/,
    );
    expect(
      await refusal(['create', 'quota', 'q', '--hard=pods=1', '-n', 'default', '--dry-run=server']),
    ).toMatch(/in tenants' namespaces/);

    await asDeployer(['create', '-f', '-'], namespace(tenant, restricted));
    expect(
      await refusal([
        'label',
        'namespace',
        tenant,
        'pod-security.kubernetes.io/enforce=privileged',
        '--overwrite',
      ]),
    ).toMatch(/tenant namespaces/);
  });

  it("binds itself the tenant role in a tenant's namespace, and nothing else anywhere", async () => {
    const binding = (ns: string, roleName: string, subject = DEPLOYER_SA) => {
      const b = tenantRoleBinding(ns, subject);
      return JSON.stringify({
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        ...b,
        roleRef: { ...b.roleRef, name: roleName },
      });
    };
    await asDeployer(['get', 'namespace', tenant]);
    expect(
      await refusal(['create', '--dry-run=server', '-f', '-'], binding('kube-system', 'deploy-mcp-tenant')),
    ).toMatch(/in tenants' namespaces/);
    expect(
      await refusal(['create', '--dry-run=server', '-f', '-'], binding(tenant, 'cluster-admin')),
    ).toMatch(/cannot bind|forbidden/i);
    expect(
      await refusal(
        ['create', '--dry-run=server', '-f', '-'],
        binding(tenant, 'deploy-mcp-tenant', { namespace: tenant, name: 'default' }),
      ),
    ).toMatch(/only bind itself/);

    expect(await refusal(['create', 'secret', 'generic', 's', '-n', tenant, '--dry-run=server'])).toMatch(
      /cannot create resource "secrets"/,
    );
    await asDeployer(['create', '-f', '-'], binding(tenant, 'deploy-mcp-tenant'));
    // RBAC applies a new binding from a watch: bounded wait, as the runtime does.
    const deadline = Date.now() + 15_000;
    while (
      (await refusal(['create', 'secret', 'generic', 's', '-n', tenant])).startsWith('allowed') === false
    ) {
      if (Date.now() > deadline) throw new Error('the tenant role binding did not take effect within 15 s');
      await sleep(250);
    }
    expect(await asDeployer(['get', 'secret', 's', '-n', tenant, '-o', 'name'])).toBe('secret/s\n');
    // The tenant role manages a tenant's workloads but runs no pods of its own.
    expect(await refusal(['run', 'shell', '--image=busybox', '-n', tenant, '--dry-run=server'])).toMatch(
      /cannot create resource "pods"/,
    );
    await asDeployer(['delete', 'namespace', tenant, '--wait=false']);
  });
});
