import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CACHE_DIR } from '../../core/cluster/cluster.ts';
import { deployerImage, layerEntries } from './deployer-image.ts';

const exec = promisify(execFile);
const repoRoot = path.resolve(import.meta.dirname, '../..');
const toolsDir = path.join(repoRoot, '.tools');
const ready = ['images/debian.tar', 'bin/pulumi', 'bin/pulumi-resource-kubernetes', 'bin/buildctl'].every(
  (f) => fs.existsSync(path.join(toolsDir, f)),
);

/** What must never be in an image layer: settings, databases, keys, credentials, kubeconfigs. */
const SECRET_LIKE = [
  /(^|\/)\.env(\.[^/]*)?$/,
  /\.(db|sqlite)(-journal|-wal|-shm)?$/,
  /(^|\/)secret\.key$/,
  /\.(p12|pfx)$/,
  /(^|\/)id_(rsa|ed25519|ecdsa)$/,
  /(^|\/)\.(npmrc|netrc|git-credentials)$/,
  /(^|\/)(admin\.)?kubeconfig$/,
  /^\.?\/?app\/\.data\//,
];

describe.skipIf(!ready)('the deployer image (platform/local/deployer-image.ts)', () => {
  it('has four layers, reuses them when nothing changed, and no layer holds a secret, key or database', async () => {
    // A database, a key and a .env in the working tree (ignored by git) must not travel.
    const planted = [
      path.join(repoRoot, '.env'),
      path.join(repoRoot, 'prisma', 'generated', 'secret.key'),
      path.join(repoRoot, 'prisma', 'generated', 'planted.db'),
    ].filter((f) => !fs.existsSync(f));
    for (const f of planted) fs.writeFileSync(f, 'DEPLOY_MCP_SECRET_KEY=not-for-images\n');
    try {
      // The machine's cache, as the cluster tests use it (a cold build takes about 10 s).
      const image = await deployerImage({ repoRoot, toolsDir, cacheDir: DEFAULT_CACHE_DIR });
      expect(image.layers.map((l) => l.name)).toEqual(['base', 'tools', 'node_modules', 'source']);
      const again = await deployerImage({ repoRoot, toolsDir, cacheDir: DEFAULT_CACHE_DIR });
      expect(again.ref).toBe(image.ref);
      expect(again.layers.map((l) => l.built)).toEqual([false, false, false, false]);

      const entries = new Map<string, string[]>();
      for (const l of image.layers) entries.set(l.name, await layerEntries(l.file));
      const all = [...entries.values()].flat();
      expect(all.filter((e) => SECRET_LIKE.some((re) => re.test(e)))).toEqual([]);
      expect(all.join('\n')).not.toMatch(/planted/);
      // Key-shaped files are public certificates only (Debian's CA bundle): no private key in any.
      for (const l of image.layers) {
        const keyish = (entries.get(l.name) ?? []).filter((e) => /\.(pem|key|crt)$/.test(e));
        if (!keyish.length) continue;
        const { stdout: contents } = await exec('tar', ['-xOf', l.file, ...keyish], { maxBuffer: 64 << 20 });
        expect(contents, l.name).not.toMatch(/PRIVATE KEY/);
      }
      // What the roles run is there: node, the CLI, Pulumi and its plugin, buildctl, git's HTTP
      // helper, the shell the git hooks use, the generated Prisma client and production modules.
      const has = (layer: string, entry: string) =>
        expect(
          entries.get(layer)?.some((e) => e.replace(/^\.\//, '') === entry),
          `${layer}: ${entry}`,
        ).toBe(true);
      has('base', 'usr/bin/sh');
      has('tools', 'app/.tools/node/bin/node');
      has('tools', 'app/.tools/bin/pulumi');
      has('tools', 'app/.tools/bin/pulumi-resource-kubernetes');
      has('tools', 'app/.tools/bin/buildctl');
      has('tools', 'usr/lib/git-core/git-remote-http');
      has('tools', 'usr/lib/git-core/git-http-backend');
      has('node_modules', 'app/node_modules/tsx/dist/loader.mjs');
      has('node_modules', 'app/node_modules/@temporalio/worker/package.json');
      has('source', 'app/cli/main.ts');
      has('source', 'app/prisma/generated/postgresql/client.ts');
      // None of our tests, no dev-only modules.
      expect(entries.get('source')?.filter((e) => /\.test\.ts$|^\.\/app\/test\//.test(e))).toEqual([]);
      expect(entries.get('node_modules')?.some((e) => e.includes('node_modules/vitest/'))).toBe(false);

      // The archive is an OCI layout whose manifest lists the four layers, for the image's user.
      const { stdout } = await exec('tar', ['-xOf', image.archive, 'index.json']);
      const index = JSON.parse(stdout);
      expect(index.manifests[0].annotations['io.containerd.image.name']).toBe(image.ref);
      const manifest = JSON.parse(
        (await exec('tar', ['-xOf', image.archive, `blobs/sha256/${index.manifests[0].digest.slice(7)}`]))
          .stdout,
      );
      expect(manifest.layers.map((l: { digest: string }) => l.digest)).toEqual(
        image.layers.map((l) => l.digest),
      );
      const config = JSON.parse(
        (await exec('tar', ['-xOf', image.archive, `blobs/sha256/${manifest.config.digest.slice(7)}`]))
          .stdout,
      );
      expect(config.config.User).toBe('10001:10001');
      expect(config.config.Env.join('\n')).not.toMatch(/SECRET|TOKEN|PASSWORD|DATABASE_URL/);
    } finally {
      for (const f of planted) fs.rmSync(f, { force: true });
    }
  }, 300_000);
});
