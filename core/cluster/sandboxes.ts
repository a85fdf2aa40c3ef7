import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KubeApi } from './api.ts';
import { cniDelete } from './cni.ts';
import { ctr, K8S_NAMESPACE } from './containerd.ts';
import { run } from './exec.ts';

type PodList = { items: { metadata: { name: string; namespace: string } }[] };

/**
 * Deletes every pod through the API and waits until the kubelet has stopped them all (it
 * removes a pod from the API only once its containers and sandbox — network included — are
 * gone). Nothing may recreate them meanwhile: stop the controller-manager first.
 */
export async function deleteAllPods(api: KubeApi, timeoutMs: number): Promise<number> {
  const pods = (await api.get<PodList>('/api/v1/pods'))?.items ?? [];
  const namespaces = [...new Set(pods.map((p) => p.metadata.namespace))];
  for (const ns of namespaces) await api.delete(`/api/v1/namespaces/${ns}/pods?gracePeriodSeconds=5`);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const left = (await api.get<PodList>('/api/v1/pods'))?.items ?? [];
    if (!left.length) return pods.length;
    await sleep(500);
  }
  const left = (await api.get<PodList>('/api/v1/pods'))?.items ?? [];
  throw new Error(
    `pods still there after ${timeoutMs} ms: ${left.map((p) => `${p.metadata.namespace}/${p.metadata.name}`).join(', ')}`,
  );
}

type ContainerInfo = {
  Labels?: Record<string, string>;
  Spec?: { linux?: { namespaces?: { type: string; path?: string }[] } };
};

/**
 * What the kubelet did not stop (it was gone, or the API was): every container of the CRI
 * namespace is killed and deleted through containerd, and each sandbox's network released
 * through the CNI plugin. Returns the ids removed.
 */
export async function removeAllContainers(socket: string, conflist: string): Promise<string[]> {
  const ids = (await ctr(socket, ['containers', 'ls', '-q'])).split('\n').filter(Boolean);
  // Application containers before their sandboxes.
  const infos = await Promise.all(
    ids.map(async (id) => ({
      id,
      info: JSON.parse(await ctr(socket, ['containers', 'info', id])) as ContainerInfo,
    })),
  );
  infos.sort((a, b) => Number(isSandbox(a.info)) - Number(isSandbox(b.info)));
  for (const { id, info } of infos) {
    await ctr(socket, ['tasks', 'kill', '--signal', 'SIGKILL', id]).catch(() => undefined);
    await ctr(socket, ['tasks', 'delete', '--force', id]).catch(() => undefined);
    const netns = info.Spec?.linux?.namespaces?.find((n) => n.type === 'network')?.path;
    if (isSandbox(info) && netns && fs.existsSync(conflist)) {
      await cniDelete(conflist, id, netns);
      await run('umount', [netns]).catch(() => undefined);
      fs.rmSync(netns, { force: true });
    }
    await ctr(socket, ['containers', 'delete', id]).catch(() => undefined);
  }
  return ids;
}

function isSandbox(info: ContainerInfo): boolean {
  return info.Labels?.['io.cri-containerd.kind'] === 'sandbox';
}

/** Pids of the runc shims of this containerd (from its state dir), whether or not it runs. */
export function shimPids(containerdState: string): number[] {
  const tasks = path.join(containerdState, 'io.containerd.runtime.v2.task', K8S_NAMESPACE);
  const pids = new Set<number>();
  let entries: string[] = [];
  try {
    entries = fs.readdirSync(tasks);
  } catch {
    return [];
  }
  for (const id of entries) {
    try {
      const pid = Number(fs.readFileSync(path.join(tasks, id, 'shim.pid'), 'utf8').trim());
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (pid > 1 && cmdline.includes('containerd-shim')) pids.add(pid);
    } catch {
      // no shim, or gone
    }
  }
  return [...pids];
}

/** SIGKILLs each pid and waits (bounded) until they are gone. */
export async function killPids(pids: number[], timeoutMs = 5000): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && pids.some(alive)) await sleep(100);
}

function alive(pid: number): boolean {
  try {
    const state = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
    return state !== undefined && state !== 'Z';
  } catch {
    return false;
  }
}
