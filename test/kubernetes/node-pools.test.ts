import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import type { Stack } from '@pulumi/pulumi/automation/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NODE_NAME } from '../../core/cluster/certificates.ts';
import {
  NODE_FIELD_MANAGER,
  type NodeLayout,
  nodeLayout,
  nodePatches,
} from '../../platform/cluster/node-pools.ts';
import { localStack } from '../../platform/local/stack.ts';
import { ALL_POOLS, type NodeTaint, POOL_LABEL } from '../../platform/pools.ts';
import { kubectl, type TestCluster, useTestCluster } from '../support/cluster.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';

type Node = {
  metadata: {
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    uid: string;
    managedFields?: { manager: string; operation: string; fieldsV1?: Record<string, unknown> }[];
  };
  spec: { taints?: { key: string; value?: string; effect: string }[] };
};

/**
 * Issue 13: the in-cluster layer keeps each node's pool label and exactly its pool's taints on the
 * live node (a NodePatch per node, server-side apply, node-pools.ts), not only at registration.
 * On a one-node cluster of its own, the test brings up only that part of the layer, with a taint
 * of effect PreferNoSchedule (harmless on the only node): `up` puts label and taint on the node,
 * a second `up` with the taint changed replaces it on the live node, a taint added by hand is
 * dropped by `up --refresh`, `destroy` gives both back and leaves the node and its other labels
 * as they were.
 */
describe('pool labels and taints kept on live nodes (NodePatch)', () => {
  const work = scratchDir('k8s-nodepools', path.join(repoRoot, '.data', 'test'));
  const stray = `deploy-mcp.dev/stray-${process.pid}`;
  const kept = `deploy-mcp.dev/kept-${process.pid}`;
  let cluster: TestCluster;
  let stack: Stack | undefined;
  let before: Node;
  const passphrase = randomBytes(24).toString('hex');
  const figures: Record<string, number> = {};
  const readNode = async (): Promise<Node> =>
    JSON.parse(
      await kubectl(cluster, ['get', 'node', NODE_NAME, '-o', 'json', '--show-managed-fields']),
    ) as Node;
  /** The layer's node part alone: the one node as the single-node layer has it, with `taints`. */
  const layout = (taints: NodeTaint[]): NodeLayout => ({
    ...nodeLayout({ name: NODE_NAME, pool: ALL_POOLS }),
    taints,
  });
  const withTaints = async (taints: NodeTaint[]) => {
    const kubeconfig = fs.readFileSync(cluster.kubeconfigPath, 'utf8');
    return localStack(
      {
        stackName: 'nodes',
        dir: path.join(work.dir, 'stack'),
        passphrase,
        pulumiRoot: path.join(repoRoot, '.tools'),
      },
      async () => {
        pulumi.runtime.registerResourceTransform((args) => ({
          props: args.props,
          opts: { ...args.opts, customTimeouts: { create: '2m', update: '2m', delete: '2m' } },
        }));
        const provider = new k8s.Provider('platform-cluster', {
          kubeconfig: pulumi.secret(kubeconfig),
          enableServerSideApply: true,
        });
        nodePatches([layout(taints)], { provider });
        return {};
      },
    );
  };
  const first: NodeTaint = { key: POOL_LABEL, value: 'first', effect: 'PreferNoSchedule' };
  const second: NodeTaint = { key: POOL_LABEL, value: 'second', effect: 'PreferNoSchedule' };

  beforeAll(async () => {
    cluster = await useTestCluster({ dir: path.join(work.dir, 'cluster'), ingress: false });
    // What was there before the layer: a label of another key (stays), a taint set by hand
    // (the layer's list replaces it: exactly the pool's taints).
    // A fresh node keeps the node controller's `not-ready` taint a moment after it is Ready.
    for (let i = 0; i < 120 && (await readNode()).spec.taints?.length; i++) await sleep(500);
    expect((await readNode()).spec.taints ?? []).toEqual([]);
    await kubectl(cluster, ['label', 'node', NODE_NAME, `${kept}=yes`]);
    await kubectl(cluster, ['taint', 'node', NODE_NAME, `${stray}=x:PreferNoSchedule`]);
    before = await readNode();
  }, 300_000);

  afterAll(async () => {
    if (stack) await stack.destroy().catch(() => undefined);
    await cluster?.release();
    console.log('node-pools figures:', JSON.stringify(figures));
    work.cleanup();
  }, 300_000);

  it('up puts the pool label and exactly the given taints on the node, owned by the layer', async () => {
    expect(before.metadata.labels?.[POOL_LABEL]).toBeUndefined();
    expect(before.spec.taints).toEqual([{ key: stray, value: 'x', effect: 'PreferNoSchedule' }]);
    stack = await withTaints([first]);
    let t = Date.now();
    const result = await stack.up();
    figures.upMs = Date.now() - t;
    expect(result.summary.resourceChanges?.create).toBe(3); // the stack, the provider, the patch
    const node = await readNode();
    expect(node.metadata.uid).toBe(before.metadata.uid);
    expect(node.metadata.labels?.[POOL_LABEL]).toBe(ALL_POOLS);
    expect(node.metadata.labels?.[kept]).toBe('yes');
    expect(node.spec.taints).toEqual([first]);
    // The layer's field manager holds the label and the whole taints list (atomic).
    const mine = node.metadata.managedFields?.filter((f) => f.manager === NODE_FIELD_MANAGER) ?? [];
    expect(mine.map((f) => f.operation)).toEqual(['Apply']);
    const fields = mine[0]?.fieldsV1 as {
      'f:metadata': { 'f:labels': Record<string, unknown> };
      'f:spec': Record<string, unknown>;
    };
    expect(Object.keys(fields['f:metadata']['f:labels'])).toEqual([`f:${POOL_LABEL}`]);
    expect(fields['f:spec']).toEqual({ 'f:taints': {} });
    // A second run with nothing changed changes nothing (names stable across updates).
    t = Date.now();
    const again = await stack.preview();
    figures.previewMs = Date.now() - t;
    expect(again.changeSummary).toEqual({ same: 3 }); // the stack, the provider, the patch
  }, 300_000);

  it('a second up with the taint changed replaces it on the live node', async () => {
    stack = await withTaints([second]);
    const t = Date.now();
    const result = await stack.up();
    figures.updateMs = Date.now() - t;
    expect(result.summary.resourceChanges?.update).toBe(1);
    const node = await readNode();
    expect(node.spec.taints).toEqual([second]);
    expect(node.metadata.labels?.[POOL_LABEL]).toBe(ALL_POOLS);
  }, 300_000);

  it('a taint added by hand between two runs is dropped by `up --refresh`', async () => {
    await kubectl(cluster, ['taint', 'node', NODE_NAME, `${stray}=y:PreferNoSchedule`]);
    const drifted = (await readNode()).spec.taints;
    expect(drifted).toHaveLength(2);
    expect(drifted).toEqual(
      expect.arrayContaining([second, { key: stray, value: 'y', effect: 'PreferNoSchedule' }]),
    );
    const t = Date.now();
    const result = await stack?.up({ refresh: true });
    figures.refreshUpMs = Date.now() - t;
    expect(result?.summary.resourceChanges?.update).toBe(1);
    expect((await readNode()).spec.taints).toEqual([second]);
  }, 300_000);

  it('destroy gives label and taints back and leaves the node and its other labels as they were', async () => {
    const t = Date.now();
    await stack?.destroy();
    figures.destroyMs = Date.now() - t;
    const node = await readNode();
    expect(node.metadata.uid).toBe(before.metadata.uid);
    expect(node.metadata.labels).toEqual(before.metadata.labels);
    expect(node.spec.taints ?? []).toEqual([]);
    expect(Object.keys(node.metadata.annotations ?? {}).filter((k) => k.startsWith('pulumi.com/'))).toEqual(
      [],
    );
    expect(node.metadata.managedFields?.map((f) => f.manager)).not.toContain(NODE_FIELD_MANAGER);
    stack = undefined;
  }, 300_000);
});
