import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../core/db/client.ts';
import { agentGit, pushNewRepo } from '../support/git.ts';
import { eventually } from '../support/http.ts';
import { call, text } from '../support/mcp.ts';
import { repoRoot, scratchDir } from '../support/scratch.ts';
import { CLI, connectAgent, type ServeProcess, startServe } from '../support/serve.ts';

const exec = promisify(execFile);
const MANIFEST_TYPES =
  'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, ' +
  'application/vnd.docker.distribution.manifest.v2+json';

/** Bytes under `dir` (du), as the disk sees them. */
async function diskUse(dir: string): Promise<number> {
  const { stdout } = await exec('du', ['-sb', dir]);
  return Number(stdout.split('\t')[0]);
}

/**
 * One release image kept; a build cache cap other than the default, to see it reach buildkitd;
 * the registry and buildkitd up all along (idle 0), so "the next start" is the server's (on
 * demand they start with the first build or deploy, through the same start code:
 * daemons-on-demand.test.ts).
 */
const SETTINGS = {
  DEPLOY_MCP_KEEP_RELEASES: '1',
  DEPLOY_MCP_BUILD_CACHE_MB: '3072',
  DEPLOY_MCP_DAEMONS_IDLE_SECONDS: '0',
};

describe('disk stays bounded: release images pruned, registry space freed, build cache capped', () => {
  const work = scratchDir('disk', path.join(repoRoot, '.data', 'test'));
  const dataDir = path.join(work.dir, 'data');
  const git = agentGit(work.dir);
  const app = path.join(work.dir, 'app');
  const name = `disk${process.pid % 100000}`;
  let serve: ServeProcess;
  let client: Client;

  beforeAll(async () => {
    serve = await startServe(dataDir, { env: SETTINGS });
    client = await connectAgent(serve, 'disk@example.com');
  });

  afterAll(async () => {
    try {
      if (client) await call(client, 'delete_service', { name }).catch(() => undefined);
    } finally {
      await client?.close();
      await serve?.stop();
      work.cleanup();
    }
  });

  const registry = () => `http://127.0.0.1:${serve.ports.registry}/v2`;

  /** The images of the service's releases, by version (from the product's database). */
  async function releaseImages(): Promise<{ repo: string; digests: string[] }> {
    const db = await openDatabase(`file:${path.join(dataDir, 'deploy-mcp.db')}`);
    try {
      const service = await db.prisma.service.findFirstOrThrow({ where: { name } });
      const releases = await db.prisma.release.findMany({
        where: { serviceId: service.id },
        orderBy: { version: 'asc' },
      });
      return {
        repo: `t/${service.stackName}`,
        digests: releases.map((r) => r.imageRef.slice(r.imageRef.indexOf('@') + 1)),
      };
    } finally {
      await db.close();
    }
  }

  async function manifestStatus(repo: string, digest: string): Promise<number> {
    const res = await fetch(`${registry()}/${repo}/manifests/${digest}`, {
      method: 'HEAD',
      headers: { accept: MANIFEST_TYPES },
    });
    return res.status;
  }

  async function deployed(res: Awaited<ReturnType<typeof call>>) {
    if (res.isError) throw new Error(`${text(res)}\n${serve.output().slice(-3000)}`);
    const view = res.structuredContent as { deployment: { id: string } | null };
    return eventually(
      async () =>
        (await call(client, 'get_service', { name })).structuredContent as {
          status: string;
          deployment: { status: string; reason: string | null };
        },
      (v) => !['queued', 'building', 'deploying'].includes(v.deployment.status),
      300_000,
    ).then((v) => {
      expect(v.deployment.reason, JSON.stringify(view)).toBeNull();
      return v;
    });
  }

  it('keeps only the newest release image (KEEP_RELEASES=1); a rollback to a pruned one says why', async () => {
    const repo = await call(client, 'create_repo', { name });
    const remote = (repo.structuredContent as { git_remote: string }).git_remote;
    fs.cpSync(path.join(repoRoot, 'test/fixtures/apps/static-site'), app, { recursive: true });
    await pushNewRepo(git, app, remote);
    await deployed(await call(client, 'create_service', { name, repo: name }));

    fs.appendFileSync(path.join(app, 'index.html'), '<!-- v2 -->\n');
    await git(['commit', '-q', '-am', 'v2'], app);
    await git(['push', '-q', remote, 'HEAD:refs/heads/main'], app);
    await deployed(await call(client, 'redeploy_service', { name }));

    const { repo: image, digests } = await releaseImages();
    expect(digests).toHaveLength(2);
    const [v1, v2] = digests as [string, string];
    // The clean-up runs right after the deploy ends.
    await eventually(
      () => manifestStatus(image, v1),
      (s) => s === 404,
      60_000,
    );
    expect(await manifestStatus(image, v2)).toBe(200);

    const rollback = await call(client, 'rollback_service', { name, release: 1 });
    expect(rollback.isError).toBe(true);
    expect(text(rollback)).toMatch(/release v1 cannot serve again: its image was deleted from the registry/);

    // The operators' command: nothing left to prune for this service, and v2 stays.
    const { stdout } = await exec(CLI, ['registry', 'prune', '--keep', '1'], { env: serve.env });
    expect(stdout).toMatch(
      /pruned \d+ image\(s\) from 127\.0\.0\.1:\d+, keeping each live service's newest 1 release/,
    );
    expect(stdout).not.toContain(v2);
    expect(await manifestStatus(image, v2)).toBe(200);
    await expect(exec(CLI, ['registry', 'prune', '--keep', '0'], { env: serve.env })).rejects.toThrow(
      /--keep must be a whole number from 1 to 1000/,
    );
  }, 600_000);

  it('frees the registry space of a deleted service at the next start', async () => {
    const { repo: image, digests } = await releaseImages();
    const v2 = digests[1] ?? '';
    const manifest = (await (
      await fetch(`${registry()}/${image}/manifests/${v2}`, { headers: { accept: MANIFEST_TYPES } })
    ).json()) as { config?: { digest: string } };
    const config = manifest.config?.digest ?? '';
    expect(config).toMatch(/^sha256:[0-9a-f]{64}$/);
    const blob = path.join(
      dataDir,
      'registry/data/docker/registry/v2/blobs/sha256',
      config.slice(7, 9),
      config.slice(7),
      'data',
    );
    expect(fs.existsSync(blob)).toBe(true);

    const res = await call(client, 'delete_service', { name });
    if (res.isError) throw new Error(text(res));
    await eventually(
      () => manifestStatus(image, v2),
      (s) => s === 404,
      120_000,
    );
    const before = await diskUse(path.join(dataDir, 'registry/data'));

    await client.close();
    await serve.stop();
    serve = await startServe(dataDir, { env: SETTINGS });
    client = await connectAgent(serve, 'disk-again@example.com');
    const after = await diskUse(path.join(dataDir, 'registry/data'));
    expect(after).toBeLessThan(before);
    expect(fs.existsSync(blob)).toBe(false);
  }, 600_000);

  it('runs buildkitd with its cache capped', async () => {
    const { stdout } = await exec(path.join(repoRoot, '.tools/bin/buildctl'), [
      '--addr',
      `unix://${path.join(dataDir, 'buildkit/buildkitd.sock')}`,
      'debug',
      'workers',
      '--verbose',
    ]);
    // Past BuildKit's own rule for cache mounts (rule 0), every GC rule is bounded by the configured
    // cap (3072 MiB = 3.221225472 GB) and a minimum of free disk space (10% of the disk).
    const rules = stdout.split(/GC Policy rule#\d+:/).slice(2);
    expect(rules.length, stdout).toBeGreaterThan(0);
    for (const rule of rules) {
      expect(rule, stdout).toMatch(/Maximum used space:\s+3\.221225472GB/);
      expect(rule, stdout).toMatch(/Minimum free space:\s+\d/);
    }
  }, 60_000);
});
