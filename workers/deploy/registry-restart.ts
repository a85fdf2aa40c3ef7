import { acquireRegistryLock } from '../../core/db/maintenance-lock.ts';
import type { KubeClient } from '../../core/kubernetes/client.ts';

export type RegistryRestartOptions = {
  kube: KubeClient;
  /** The product database's URL (PostgreSQL: the lock is shared with the deployer's builds). */
  databaseUrl: string;
  namespace: string;
  deployment: string;
  /** The registry's address (host:port), asked for `/v2/` once the rollout is done. */
  registryHost: string;
  /** Longest wait for the builds under way to finish pushing (default 15 minutes). */
  lockTimeoutMs?: number;
  /** Longest wait for the restarted registry to be ready (default 15 minutes: its collection runs first). */
  readyTimeoutMs?: number;
  log: (line: string) => void;
};

type Deployment = {
  metadata: { generation?: number };
  spec: { replicas?: number };
  status?: {
    observedGeneration?: number;
    replicas?: number;
    updatedReplicas?: number;
    readyReplicas?: number;
    availableReplicas?: number;
  };
};

/** The annotation `kubectl rollout restart` sets on the pod template. */
const RESTARTED_AT = 'kubectl.kubernetes.io/restartedAt';

/**
 * Restarts the registry Deployment (a rollout restart: its pod template's annotation) so that its
 * garbage collection runs before it serves again (platform/cluster/registry.ts), while holding the
 * maintenance lock's exclusive side: no build pushes meanwhile (they wait, bounded, and say so).
 * Waits, bounded, for the new pod to be ready and the registry to answer; the lock is released
 * however this ends (a failure leaves the registry running or restarting, never stopped by us).
 * Needs only `patch` on that Deployment: the status is read from a no-op patch's answer.
 */
export async function restartRegistry(
  o: RegistryRestartOptions,
): Promise<{ lockWaitMs: number; restartMs: number }> {
  const path = `/apis/apps/v1/namespaces/${encodeURIComponent(o.namespace)}/deployments/${encodeURIComponent(o.deployment)}`;
  const t0 = Date.now();
  const lock = await acquireRegistryLock(o.databaseUrl, 'exclusive', {
    timeoutMs: o.lockTimeoutMs ?? 900_000,
    onWait: () => o.log('waiting for the builds under way to finish pushing (the maintenance lock)'),
  });
  const t1 = Date.now();
  try {
    const patch = {
      spec: { template: { metadata: { annotations: { [RESTARTED_AT]: new Date().toISOString() } } } },
    };
    const patched = await o.kube.mergePatch<Deployment>(path, patch);
    const generation = patched.metadata.generation ?? 0;
    o.log(
      `restarting ${o.namespace}/${o.deployment} (generation ${generation}): its garbage collection runs first`,
    );
    const deadline = Date.now() + (o.readyTimeoutMs ?? 900_000);
    let last = '';
    for (let i = 0; Date.now() < deadline && i < 100_000; i++) {
      // The same patch again changes nothing and answers the current status.
      const d = await o.kube.mergePatch<Deployment>(path, patch).catch((err: Error) => {
        last = err.message;
        return undefined;
      });
      if (d && rolledOut(d, generation) && (await answers(o.registryHost))) {
        o.log(`${o.namespace}/${o.deployment} is ready again`);
        return { lockWaitMs: t1 - t0, restartMs: Date.now() - t1 };
      }
      if (d) last = JSON.stringify(d.status ?? {});
      await new Promise((r) => setTimeout(r, 1000));
    }
    throw new Error(`${o.namespace}/${o.deployment} was not ready in time (last status: ${last})`);
  } finally {
    await lock.release();
  }
}

/** `kubectl rollout status`'s test: the new template's pods all ready, no old pod left. */
function rolledOut(d: Deployment, generation: number): boolean {
  const s = d.status ?? {};
  const want = d.spec.replicas ?? 1;
  return (
    (s.observedGeneration ?? 0) >= generation &&
    (s.updatedReplicas ?? 0) >= want &&
    (s.replicas ?? 0) <= (s.updatedReplicas ?? 0) &&
    (s.availableReplicas ?? 0) >= (s.updatedReplicas ?? 0) &&
    (s.readyReplicas ?? 0) >= want
  );
}

async function answers(registryHost: string): Promise<boolean> {
  try {
    const res = await fetch(`http://${registryHost}/v2/`, { signal: AbortSignal.timeout(5_000) });
    return res.status === 200;
  } catch {
    return false;
  }
}
