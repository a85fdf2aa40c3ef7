/** The parts of a Pod the diagnosis reads (the API's JSON). */
export type Pod = {
  metadata: { name: string; labels?: Record<string, string>; creationTimestamp?: string };
  status?: {
    phase?: string;
    podIP?: string;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
    containerStatuses?: {
      name: string;
      ready: boolean;
      restartCount: number;
      state?: ContainerState;
      lastState?: ContainerState;
    }[];
  };
};

type ContainerState = {
  waiting?: { reason?: string; message?: string };
  running?: { startedAt?: string };
  terminated?: {
    exitCode: number;
    reason?: string;
    message?: string;
    startedAt?: string;
    finishedAt?: string;
  };
};

/** A ReplicaSet's conditions (e.g. ReplicaFailure when the quota refuses its pods). */
export type ReplicaSetConditions = { type: string; status: string; reason?: string; message?: string }[];

export type PodVerdict =
  | { state: 'ready' }
  | { state: 'waiting' }
  | { state: 'failed'; reason: string; crashed: boolean };

/** How long a pod may stay unschedulable before that is the verdict (the scheduler retries). */
const UNSCHEDULABLE_GRACE_MS = 15_000;

/**
 * Judges a release from its pods, in the cluster's own words, as the local runtime judges a
 * container: ready; or failed because the process exited (code, restarts), ran out of memory
 * (limit), the image could not be pulled (the registry's message), the pod cannot be scheduled
 * or created (quota, resources: the scheduler's or controller's message); else still waiting.
 */
export function diagnosePods(
  pods: Pod[],
  o: { memoryMb: number; waitedMs: number; replicaSet?: ReplicaSetConditions | undefined },
): PodVerdict {
  if (pods.some((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')))
    return { state: 'ready' };
  for (const pod of pods) {
    for (const c of pod.status?.containerStatuses ?? []) {
      const now = c.state?.terminated;
      const last = c.lastState?.terminated;
      if (now?.reason === 'OOMKilled' || last?.reason === 'OOMKilled')
        return fail(
          `the process was killed: it ran out of memory (limit ${o.memoryMb} MiB); raise memory`,
          true,
        );
      const waiting = c.state?.waiting;
      if (
        waiting?.reason &&
        ['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName'].includes(waiting.reason)
      )
        return fail(`the image could not be pulled: ${waiting.message ?? waiting.reason}`);
      if (
        waiting?.reason &&
        ['CreateContainerConfigError', 'CreateContainerError', 'RunContainerError'].includes(waiting.reason)
      )
        return fail(`the container could not start: ${waiting.message ?? waiting.reason}`);
      const exited = now ?? last;
      if (exited && (c.restartCount > 0 || waiting?.reason === 'CrashLoopBackOff' || now)) {
        const ran = Date.parse(exited.finishedAt ?? '') - Date.parse(exited.startedAt ?? '');
        const after =
          c.restartCount === 0 && Number.isFinite(ran) && ran >= 0
            ? ` after ${(ran / 1000).toFixed(1)} s`
            : '';
        const again =
          c.restartCount > 0
            ? ` (crash loop: restarted ${c.restartCount} time${c.restartCount > 1 ? 's' : ''})`
            : '';
        if (exited.exitCode === 137)
          return fail(
            `the process was killed (exit code 137)${again}: it ran out of memory (limit ${o.memoryMb} MiB); raise memory`,
            true,
          );
        return fail(`the process exited with code ${exited.exitCode}${after}${again}`, true);
      }
    }
    const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
    if (
      scheduled?.status === 'False' &&
      scheduled.reason === 'Unschedulable' &&
      o.waitedMs > UNSCHEDULABLE_GRACE_MS
    )
      return fail(`the pod cannot be scheduled: ${scheduled.message ?? 'no node fits'}`);
  }
  const refused = o.replicaSet?.find((c) => c.type === 'ReplicaFailure' && c.status === 'True');
  if (!pods.length && refused)
    return fail(`the pod could not be created: ${refused.message ?? refused.reason ?? ''}`);
  return { state: 'waiting' };
}

function fail(reason: string, crashed = false): PodVerdict {
  return { state: 'failed', reason, crashed };
}
