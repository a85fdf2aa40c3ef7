import type { Db } from '../../core/db/client.ts';
import { IN_FLIGHT_STATUSES } from './statuses.ts';

/** The manifest media types BuildKit pushes (asked for when reading a tag's digest). */
const MANIFEST_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

/** At most this many tags are read per repository and run (a bound; the rest wait for the next run). */
const MAX_TAGS = 1000;

export type PruneOptions = {
  db: Db;
  /** The registry the service images are pushed to (host:port, plain HTTP). */
  registryHost: string;
  /** Images of the newest this-many releases of each live service are kept (the serving one always). */
  keepReleases: number;
  /** Only these services (default: every service, deleted ones included). */
  serviceIds?: string[];
  /** Per registry request (default 10 s). */
  timeoutMs?: number;
};

export type PruneResult = {
  /** `repo@digest` of each manifest deleted. */
  deleted: string[];
  /** Services skipped because a deployment of theirs is in flight (its image is not recorded yet). */
  skipped: number;
};

/**
 * Deletes from the registry the images no release needs: every image of a deleted service, and
 * of a live service those of failed or superseded builds and of releases older than the newest
 * `keepReleases` (the serving release's always stays). Releases whose image goes are marked
 * (Release.imagePrunedAt) so a rollback to them says why it cannot. The registry frees the
 * blobs at its next garbage collection (at start, core/daemons/registry.ts). Base images
 * (`deploy-mcp/*`) are never touched: service images live under `t/<stack name>`.
 */
export async function pruneRegistry(o: PruneOptions): Promise<PruneResult> {
  const { db } = o;
  const services = await db.service.findMany({
    where: o.serviceIds ? { id: { in: o.serviceIds } } : {},
    select: { id: true, stackName: true, deletedAt: true, currentReleaseId: true },
  });
  const result: PruneResult = { deleted: [], skipped: 0 };
  for (const service of services) {
    const busy = () =>
      db.deployment.count({ where: { serviceId: service.id, status: { in: IN_FLIGHT_STATUSES } } });
    if (!service.deletedAt && (await busy())) {
      result.skipped++;
      continue;
    }
    const repo = `t/${service.stackName}`;
    const releases = await db.release.findMany({
      where: { serviceId: service.id },
      select: { id: true, version: true, imageRef: true, imagePrunedAt: true },
      orderBy: { version: 'desc' },
    });
    const keep = new Set<string>();
    if (!service.deletedAt) {
      for (const r of releases.slice(0, o.keepReleases)) keep.add(digestOf(r.imageRef));
      const serving = releases.find((r) => r.id === service.currentReleaseId);
      if (serving) keep.add(digestOf(serving.imageRef));
    }
    // Candidates: what the tags point at, and every image the service's deployments recorded
    // (a tag rewritten by a rebuild leaves its earlier image untagged but still recorded).
    const recorded = await db.deployment.findMany({
      where: { serviceId: service.id, imageRef: { not: null } },
      select: { imageRef: true },
    });
    const candidates = new Set<string>(recorded.map((d) => digestOf(d.imageRef ?? '')).filter(Boolean));
    for (const tag of await tags(o, repo)) {
      const digest = await tagDigest(o, repo, tag);
      if (digest) candidates.add(digest);
    }
    // A deployment started meanwhile may have pushed an image not recorded yet: leave it all.
    if (!service.deletedAt && (await busy())) {
      result.skipped++;
      continue;
    }
    for (const digest of candidates) {
      if (keep.has(digest)) continue;
      if (await deleteManifest(o, repo, digest)) result.deleted.push(`${repo}@${digest}`);
    }
    const pruned = releases.filter((r) => !r.imagePrunedAt && !keep.has(digestOf(r.imageRef)));
    if (pruned.length)
      await db.release.updateMany({
        where: { id: { in: pruned.map((r) => r.id) } },
        data: { imagePrunedAt: new Date() },
      });
  }
  return result;
}

/** The `sha256:…` digest of a pinned image reference (`host/repo@sha256:…`); '' when not pinned. */
function digestOf(imageRef: string): string {
  const at = imageRef.lastIndexOf('@');
  return at < 0 ? '' : imageRef.slice(at + 1);
}

async function registryFetch(o: PruneOptions, pathname: string, init: RequestInit = {}) {
  return fetch(`http://${o.registryHost}/v2/${pathname}`, {
    ...init,
    signal: AbortSignal.timeout(o.timeoutMs ?? 10_000),
  });
}

async function tags(o: PruneOptions, repo: string): Promise<string[]> {
  const res = await registryFetch(o, `${repo}/tags/list?n=${MAX_TAGS}`);
  if (res.status === 404) return [];
  if (!res.ok) throw new Error(`registry: listing ${repo}'s tags answered ${res.status}`);
  const body = (await res.json()) as { tags?: string[] | null };
  return (body.tags ?? []).slice(0, MAX_TAGS);
}

async function tagDigest(o: PruneOptions, repo: string, tag: string): Promise<string | undefined> {
  const res = await registryFetch(o, `${repo}/manifests/${encodeURIComponent(tag)}`, {
    method: 'HEAD',
    headers: { accept: MANIFEST_TYPES },
  });
  return res.ok ? (res.headers.get('docker-content-digest') ?? undefined) : undefined;
}

/** Deletes a manifest (and every tag naming it); false when it was gone already. */
async function deleteManifest(o: PruneOptions, repo: string, digest: string): Promise<boolean> {
  const res = await registryFetch(o, `${repo}/manifests/${digest}`, { method: 'DELETE' });
  await res.body?.cancel();
  if (res.status === 202 || res.ok) return true;
  if (res.status === 404) return false;
  throw new Error(`registry: deleting ${repo}@${digest} answered ${res.status}`);
}
