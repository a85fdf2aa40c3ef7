import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { freePort } from '../../core/daemons/probes.ts';
import { type Registry, startRegistry } from '../../core/daemons/registry.ts';
import { scratchDir } from '../../test/support/scratch.ts';
import { garbageCollectScript } from './registry.ts';

const exec = promisify(execFile);
const BIN = '/usr/bin/docker-registry';
const work = scratchDir('registry-gc');
let registry: Registry | undefined;

afterAll(async () => {
  await registry?.stop();
  work.cleanup();
});

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/**
 * The registry pod's init container script (platform/cluster/registry.ts), run with dash as the
 * pod runs it, on a real registry's storage: the blobs of a deleted image go, the kept image's
 * stay, and a failing collection still lets the registry start (exit 0, the failure in the log).
 */
it("the init container's garbage collection frees a deleted image's blobs and keeps a kept one's", async () => {
  registry = await startRegistry({ bin: BIN, dir: work.dir, port: await freePort() });
  const base = `http://${registry.host}/v2`;
  const push = async (repo: string, text: string) => {
    const layer = Buffer.from(text);
    const config = Buffer.from(
      JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers' } }),
    );
    for (const blob of [layer, config]) {
      // An upload session, then the blob in one PUT (distribution 2.8 has no single-POST upload).
      const start = await fetch(`${base}/${repo}/blobs/uploads/`, { method: 'POST' });
      expect(start.status).toBe(202);
      const location = new URL(start.headers.get('location') ?? '', base);
      location.searchParams.set('digest', sha(blob));
      const res = await fetch(location, {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream' },
        body: blob,
      });
      expect(res.status).toBe(201);
    }
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: {
          mediaType: 'application/vnd.oci.image.config.v1+json',
          digest: sha(config),
          size: config.length,
        },
        layers: [
          { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(layer), size: layer.length },
        ],
      }),
    );
    const res = await fetch(`${base}/${repo}/manifests/${sha(manifest)}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: manifest,
    });
    expect(res.status).toBe(201);
    return { manifest: sha(manifest), layer: sha(layer) };
  };
  const gone = await push('t/gone', `gone ${process.pid}`);
  const kept = await push('t/kept', `kept ${process.pid}`);
  const del = await fetch(`${base}/t/gone/manifests/${gone.manifest}`, { method: 'DELETE' });
  expect(del.status).toBe(202);
  await registry.stop();
  registry = undefined;

  const blobDir = (digest: string) =>
    path.join(work.dir, 'data/docker/registry/v2/blobs/sha256', digest.slice(7, 9), digest.slice(7));
  for (const d of [gone.manifest, gone.layer, kept.manifest, kept.layer])
    expect(fs.existsSync(blobDir(d))).toBe(true);
  const script = garbageCollectScript(BIN, path.join(work.dir, 'config.yml'), path.join(work.dir, 'gc.log'));
  const { stdout } = await exec('/bin/sh', ['-c', script], { timeout: 120_000 });
  // The deleted image's manifest, layer and (shared) config: the config blob is the kept image's too.
  expect(stdout).toMatch(/^garbage-collect: exit 0, 2 blob\(s\) deleted$/m);
  expect(fs.existsSync(blobDir(gone.manifest))).toBe(false);
  expect(fs.existsSync(blobDir(gone.layer))).toBe(false);
  expect(fs.existsSync(blobDir(kept.manifest))).toBe(true);
  expect(fs.existsSync(blobDir(kept.layer))).toBe(true);

  // A collection that fails (a configuration it cannot read) says so and exits 0: the registry starts.
  const failed = await exec(
    '/bin/sh',
    ['-c', garbageCollectScript(BIN, path.join(work.dir, 'missing.yml'), path.join(work.dir, 'gc2.log'))],
    { timeout: 60_000 },
  );
  expect(failed.stdout).toMatch(/^garbage-collect: exit [1-9]\d*, 0 blob\(s\) deleted$/m);
  expect(failed.stdout.split('\n').length).toBeGreaterThan(2);
}, 180_000);
