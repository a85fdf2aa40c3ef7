import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { containerdPaths, importImage } from '../../core/cluster/containerd.ts';
import { clusterLayout } from '../../core/cluster/layout.ts';
import { imageManifest, sha256 } from '../../core/cluster/oci-archive.ts';

const exec = promisify(execFile);

/** The uid:gid the deployer's pods run as (platform/cluster/deployer.ts), named `deploy-mcp` in the image. */
export const DEPLOYER_UID = 10001;
/** Where the product lives in the image. */
export const APP_DIR = '/app';

/** What goes into the product layers: the runtime code only (no tests, benches or Ansible). */
const SOURCE_DIRS = ['bin', 'cli', 'core', 'git', 'mcp', 'platform', 'prisma', 'tenant-stacks', 'workers'];
const SOURCE_FILES = ['package.json', 'tsconfig.json'];
/** Base image tarballs the worker names (workers/build/base-images.ts); only their names travel. */
const BASE_TARBALLS = ['debian.tar', 'node.tar', 'python.tar', 'python-3.13.tar', 'go.tar'];
/**
 * Production dependencies the deployer never loads: the Prisma CLI and its studio and dev
 * database (migrations run through @prisma/schema-engine-wasm), the Temporal bridge's Rust
 * sources and other platforms' builds, musl builds of libsql.
 */
const BRIDGE_RELEASE = process.arch === 'arm64' ? 'aarch64-unknown-linux-gnu' : 'x86_64-unknown-linux-gnu';
const UNUSED_MODULES = [
  /^node_modules\/(prisma|@prisma\/studio-core|@prisma\/dev|@electric-sql\/pglite)(\/|$)/,
  /^node_modules\/@temporalio\/core-bridge\/(sdk-core|src|bridge-macros|Cargo\.(toml|lock))(\/|$)/,
  new RegExp(`^node_modules/@temporalio/core-bridge/releases/(?!${BRIDGE_RELEASE}(/|$))`),
  /^node_modules\/@libsql\/linux-[a-z0-9]+-musl(\/|$)/,
];
/** Never in a layer, whatever a folder holds. */
const NEVER = [
  /(^|\/)\.env(\..*)?$/,
  /\.db(-journal|-wal|-shm)?$/,
  /(^|\/)secret\.key$/,
  /\.pem$/,
  /(^|\/)\.npmrc$/,
];

export type DeployerImageLayer = {
  /** base (Debian minbase), tools (git, node, Pulumi, buildctl), node_modules, source. */
  name: string;
  /** The layer's tar in the cache dir. */
  file: string;
  digest: string;
  size: number;
  /** Whether this call built it (false: reused from the cache). */
  built: boolean;
};

export type DeployerImage = { ref: string; archive: string; layers: DeployerImageLayer[] };

export type DeployerImageOptions = {
  /** The repository (its source, node_modules and generated Prisma client go in). */
  repoRoot: string;
  /** The tools dir `npm run setup` fills (bin/, node/, images/). */
  toolsDir: string;
  /** Where layers and archives are cached (images.ts's: `<cache>/platform-images`). */
  cacheDir: string;
};

/**
 * The deployer image (deployer-server and deployer-worker run it), from what setup already has;
 * nothing is pulled. Four layers, each cached under its own key so a rerun rebuilds only what
 * changed:
 *
 * - **base**: setup's debootstrapped Debian bookworm minbase (`.tools/images/debian.tar`, the
 *   apps' runtime base): the tarball is the layer as it is, so it costs nothing to build. It
 *   gives the shell, coreutils, `tar` and `du` the product runs (git hooks are `/bin/sh` scripts,
 *   the repo store measures with `du`), and the same glibc the host's binaries were linked with.
 * - **tools** (keyed by the tools' paths, sizes and times): Debian's git (the files of its
 *   package, with the shared libraries `ldd` names: `git-remote-http` needs libcurl and its
 *   kin), Node.js, the Pulumi CLI and `pulumi-resource-kubernetes`, `buildctl`, a `deploy-mcp`
 *   user, and the base image tarballs' names (links to nothing: the worker publishes no base
 *   image itself, they are published before, `DEPLOY_MCP_BASE_IMAGE_PREFIX`).
 * - **node_modules** (keyed by `package-lock.json`): the production dependencies only
 *   (`npm ls --omit=dev`).
 * - **source** (keyed by content): the runtime folders of the repository (tracked files, no
 *   tests) and the generated Prisma client.
 *
 * No `.env`, database, key or token file goes in (`NEVER`; the test lists every layer's entries).
 */
export async function deployerImage(o: DeployerImageOptions): Promise<DeployerImage> {
  const dir = path.join(o.cacheDir, 'platform-images', 'deployer');
  fs.mkdirSync(dir, { recursive: true });
  // One build at a time per cache (test files run in parallel): another's hard links and
  // renames change the layers' ctime under this one's tar, which then fails.
  return withBuildLock(dir, () => buildDeployerImage(o, dir));
}

async function buildDeployerImage(o: DeployerImageOptions, dir: string): Promise<DeployerImage> {
  // What a build that died left (this one holds the lock: nobody else writes here now).
  for (const f of fs.readdirSync(dir))
    if (/\.tmp$|^(stage|layout)-/.test(f)) fs.rmSync(path.join(dir, f), { recursive: true, force: true });
  const layers: DeployerImageLayer[] = [];
  layers.push(await baseLayer(o, dir));
  layers.push(await toolsLayer(o, dir));
  layers.push(await nodeModulesLayer(o, dir));
  layers.push(await sourceLayer(o, dir));
  const config = Buffer.from(
    JSON.stringify({
      architecture: process.arch === 'arm64' ? 'arm64' : 'amd64',
      os: 'linux',
      config: {
        // The same start as `npx deploy-mcp` here (bin/deploy-mcp: Node's own type stripping,
        // the settings preload, the memory flags): one place says how the product starts.
        Entrypoint: [`${APP_DIR}/bin/deploy-mcp`],
        User: `${DEPLOYER_UID}:${DEPLOYER_UID}`,
        WorkingDir: APP_DIR,
        Env: [
          `PATH=${APP_DIR}/.tools/node/bin:${APP_DIR}/.tools/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
          `DEPLOY_MCP_TOOLS_DIR=${APP_DIR}/.tools`,
          'HOME=/tmp',
          'LANG=C.UTF-8',
        ],
      },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
    }),
  );
  const manifest = imageManifest(config, layers);
  const tag = sha256(manifest).slice(7, 19);
  const ref = `localhost/deploy-mcp/deployer:${tag}`;
  const archive = path.join(dir, `deployer-${tag}.oci.tar`);
  if (!fs.existsSync(archive)) {
    // The OCI layout, its blobs hard links to the cached layers (one file system), then one tar.
    const layout = fs.mkdtempSync(path.join(dir, 'layout-'));
    try {
      const blobs = path.join(layout, 'blobs', 'sha256');
      fs.mkdirSync(blobs, { recursive: true });
      const put = (data: Buffer) => fs.writeFileSync(path.join(blobs, sha256(data).slice(7)), data);
      put(config);
      put(manifest);
      for (const l of layers) fs.linkSync(l.file, path.join(blobs, l.digest.slice(7)));
      fs.writeFileSync(path.join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
      fs.writeFileSync(
        path.join(layout, 'index.json'),
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.index.v1+json',
          manifests: [
            {
              mediaType: 'application/vnd.oci.image.manifest.v1+json',
              digest: sha256(manifest),
              size: manifest.length,
              annotations: { 'io.containerd.image.name': ref },
            },
          ],
        }),
      );
      const tmp = `${archive}.${process.pid}.tmp`;
      await exec('tar', ['-cf', tmp, '-C', layout, 'oci-layout', 'index.json', 'blobs'], {
        maxBuffer: 1 << 20,
      });
      fs.renameSync(tmp, archive);
      // Older archives of this image are superseded (layers stay: they are keyed on their own).
      for (const f of fs.readdirSync(dir))
        if (/^deployer-[0-9a-f]{12}\.oci\.tar$/.test(f) && path.join(dir, f) !== archive)
          fs.rmSync(path.join(dir, f), { force: true });
    } finally {
      fs.rmSync(layout, { recursive: true, force: true });
    }
  }
  return { ref, archive, layers };
}

/** Builds (or reuses) the deployer image and imports it into the one-node cluster's containerd. */
export async function importDeployerImage(
  o: DeployerImageOptions & { clusterDir: string },
): Promise<DeployerImage> {
  const image = await deployerImage(o);
  const socket = containerdPaths(clusterLayout(o.clusterDir).containerd).socket;
  await importImage(socket, image.ref, image.archive);
  return image;
}

/** Every entry of a layer (`tar -t`), for checks such as "no secret in any layer". */
export async function layerEntries(file: string): Promise<string[]> {
  const { stdout } = await exec('tar', ['-tf', file], { maxBuffer: 256 << 20 });
  return stdout.split('\n').filter(Boolean);
}

// --- layers ---

async function baseLayer(o: DeployerImageOptions, dir: string): Promise<DeployerImageLayer> {
  const file = fs.realpathSync(path.join(o.toolsDir, 'images', 'debian.tar'));
  return { name: 'base', file, ...(await digestOf(file, dir)), built: false };
}

async function toolsLayer(o: DeployerImageOptions, dir: string): Promise<DeployerImageLayer> {
  const bin = path.join(o.toolsDir, 'bin');
  const tools: [string, string][] = [
    [path.join(o.toolsDir, 'node', 'bin', 'node'), `app/.tools/node/bin/node`],
    [path.join(bin, 'pulumi'), 'app/.tools/bin/pulumi'],
    [path.join(bin, 'pulumi-resource-kubernetes'), 'app/.tools/bin/pulumi-resource-kubernetes'],
    [path.join(bin, 'buildctl'), 'app/.tools/bin/buildctl'],
  ].map(([from, to]) => [fs.realpathSync(from as string), to as string]);
  const gitFiles = (await exec('dpkg', ['-L', 'git'])).stdout
    .split('\n')
    .filter(
      (f) => f.startsWith('/usr/') && !/^\/usr\/share\/(doc|man|locale|lintian|bash-completion)/.test(f),
    )
    .filter((f) => fs.lstatSync(f, { throwIfNoEntry: false })?.isFile() || isLink(f));
  const libs = new Set<string>();
  for (const b of ['/usr/bin/git', '/usr/lib/git-core/git-remote-http', '/usr/lib/git-core/git-http-backend'])
    for (const lib of await sharedLibraries(b)) libs.add(lib);
  const key = createHash('sha256').update('tools-v2\0');
  for (const [from, to] of tools) key.update(stamp(from, to));
  for (const f of [...gitFiles, ...libs]) key.update(stamp(f, f));
  key.update(BASE_TARBALLS.map((t) => tarballName(o.toolsDir, t)).join('\0'));
  return cachedLayer(dir, 'tools', key.digest('hex').slice(0, 16), async (stage) => {
    for (const [from, to] of tools) hardLink(from, path.join(stage, to));
    for (const f of gitFiles) copyEntry(f, path.join(stage, f.slice(1)));
    for (const lib of libs) hardLink(fs.realpathSync(lib), path.join(stage, lib.slice(1)));
    // The dynamic-provider launcher Pulumi looks for on PATH (setup links it the same way).
    fs.symlinkSync(
      `${APP_DIR}/node_modules/@pulumi/pulumi/pulumi-resource-pulumi-nodejs`,
      path.join(stage, 'app/.tools/bin/pulumi-resource-pulumi-nodejs'),
    );
    fs.mkdirSync(path.join(stage, 'app/.tools/images'), { recursive: true });
    for (const t of BASE_TARBALLS)
      fs.symlinkSync(`/nonexistent/${tarballName(o.toolsDir, t)}`, path.join(stage, 'app/.tools/images', t));
    // The pods' user: git and ssh look a uid up; Debian's own lines first.
    const etc = path.join(stage, 'etc');
    fs.mkdirSync(etc, { recursive: true });
    const minbase = async (f: string) =>
      (
        await exec('tar', [
          '-xOf',
          fs.realpathSync(path.join(o.toolsDir, 'images', 'debian.tar')),
          `./etc/${f}`,
        ])
      ).stdout;
    fs.writeFileSync(
      path.join(etc, 'passwd'),
      `${await minbase('passwd')}deploy-mcp:x:${DEPLOYER_UID}:${DEPLOYER_UID}::/tmp:/usr/sbin/nologin\n`,
    );
    fs.writeFileSync(path.join(etc, 'group'), `${await minbase('group')}deploy-mcp:x:${DEPLOYER_UID}:\n`);
  });
}

async function nodeModulesLayer(o: DeployerImageOptions, dir: string): Promise<DeployerImageLayer> {
  const lock = fs.readFileSync(path.join(o.repoRoot, 'package-lock.json'));
  const key = createHash('sha256').update('node_modules-v3\0').update(lock).digest('hex').slice(0, 16);
  return cachedLayer(dir, 'node_modules', key, async (stage) => {
    // npm exits 1 on a problem it reports (an extraneous package) but still lists the tree.
    const { stdout } = await exec('npm', ['ls', '--omit=dev', '--all', '--parseable'], {
      cwd: o.repoRoot,
      maxBuffer: 64 << 20,
    }).catch((err: { stdout?: string }) => {
      if (!err.stdout) throw err;
      return { stdout: err.stdout };
    });
    const root = path.resolve(o.repoRoot);
    const packages = stdout
      .split('\n')
      .filter((p) => p.startsWith(`${root}/node_modules/`))
      .map((p) => p.slice(root.length + 1));
    for (const pkg of packages)
      if (!UNUSED_MODULES.some((re) => re.test(pkg)))
        copyTree(path.join(root, pkg), path.join(stage, 'app', pkg), true, (rel) =>
          UNUSED_MODULES.some((re) => re.test(path.join(pkg, rel))),
        );
  });
}

async function sourceLayer(o: DeployerImageOptions, dir: string): Promise<DeployerImageLayer> {
  const { stdout } = await exec('git', ['ls-files', '-z', '--', ...SOURCE_DIRS, ...SOURCE_FILES], {
    cwd: o.repoRoot,
    maxBuffer: 16 << 20,
  });
  const tracked = stdout
    .split('\0')
    .filter((f) => f && !/\.test\.ts$/.test(f) && fs.existsSync(path.join(o.repoRoot, f)));
  const generated = listFiles(path.join(o.repoRoot, 'prisma', 'generated')).map((f) =>
    path.relative(o.repoRoot, f),
  );
  const files = [...tracked, ...generated].filter((f) => !NEVER.some((re) => re.test(f))).sort();
  const key = createHash('sha256').update('source-v2\0');
  for (const f of files)
    key
      .update(f)
      .update('\0')
      .update(fs.readFileSync(path.join(o.repoRoot, f)));
  return cachedLayer(dir, 'source', key.digest('hex').slice(0, 16), async (stage) => {
    for (const f of files) hardLink(path.join(o.repoRoot, f), path.join(stage, 'app', f));
  });
}

// --- helpers ---

/** Runs `fn` holding `<dir>/build.lock` (a directory: made atomically; a dead holder's is taken over), waiting up to 10 min. */
async function withBuildLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const lock = path.join(dir, 'build.lock');
  const deadline = Date.now() + 600_000;
  for (;;) {
    try {
      fs.mkdirSync(lock);
      fs.writeFileSync(path.join(lock, 'pid'), String(process.pid));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let holder = 0; // 0: just made, its pid not written yet (or gone meanwhile: try again)
      try {
        holder = Number(fs.readFileSync(path.join(lock, 'pid'), 'utf8')) || 0;
      } catch {
        // no pid file (yet)
      }
      if (holder && !alive(holder)) {
        fs.rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline)
        throw new Error(`the deployer image build lock ${lock} is held by pid ${holder}`);
      await sleep(250);
    }
  }
  try {
    return await fn();
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A layer built once per key: `fill` puts its files in a staging dir (hard links where it can),
 * then one reproducible tar (owner root, time 0, sorted names) becomes `<name>-<key>.tar`.
 */
async function cachedLayer(
  dir: string,
  name: string,
  key: string,
  fill: (stage: string) => Promise<void>,
): Promise<DeployerImageLayer> {
  const file = path.join(dir, `${name}-${key}.tar`);
  let built = false;
  if (!fs.existsSync(file)) {
    const stage = fs.mkdtempSync(path.join(dir, `stage-${name}-`));
    // The tar's "./" entry becomes the image's root directory: 0755, as Debian's.
    fs.chmodSync(stage, 0o755);
    try {
      await fill(stage);
      const tmp = `${file}.${process.pid}.tmp`;
      await exec('tar', [
        '-cf',
        tmp,
        '-C',
        stage,
        '--sort=name',
        '--owner=0',
        '--group=0',
        '--numeric-owner',
        '--mtime=@0',
        '--mode=go-w',
        '.',
      ]);
      fs.renameSync(tmp, file);
      built = true;
    } finally {
      fs.rmSync(stage, { recursive: true, force: true });
    }
    for (const f of fs.readdirSync(dir))
      if (f.startsWith(`${name}-`) && f.endsWith('.tar') && path.join(dir, f) !== file)
        fs.rmSync(path.join(dir, f), { force: true });
  }
  return { name, file, ...(await digestOf(file, dir)), built };
}

/** A layer's digest, cached beside it by path, size and time (hashing 100 MB takes a while). */
async function digestOf(file: string, dir: string): Promise<{ digest: string; size: number }> {
  const st = fs.statSync(file);
  const memo = path.join(
    dir,
    `digest-${createHash('sha256').update(`${file}\0${st.size}\0${st.mtimeMs}`).digest('hex').slice(0, 16)}`,
  );
  if (fs.existsSync(memo)) return { digest: fs.readFileSync(memo, 'utf8'), size: st.size };
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  const digest = `sha256:${hash.digest('hex')}`;
  fs.writeFileSync(memo, digest);
  return { digest, size: st.size };
}

/** The name setup gave a base image tarball (what the worker's image tags are keyed by). */
function tarballName(toolsDir: string, tarball: string): string {
  const link = path.join(toolsDir, 'images', tarball);
  try {
    return path.basename(fs.realpathSync(link));
  } catch {
    return path.basename(isLink(link) ? fs.readlinkSync(link) : tarball);
  }
}

function stamp(from: string, to: string): string {
  const st = fs.lstatSync(from);
  return `${to}\0${from}\0${st.size}\0${st.mtimeMs}\0`;
}

function isLink(f: string): boolean {
  return fs.lstatSync(f, { throwIfNoEntry: false })?.isSymbolicLink() ?? false;
}

function hardLink(from: string, to: string) {
  fs.mkdirSync(path.dirname(to), { recursive: true });
  try {
    fs.linkSync(from, to);
  } catch {
    fs.copyFileSync(from, to);
    fs.chmodSync(to, fs.statSync(from).mode & 0o777);
  }
}

/** A file or a symbolic link (kept a link), at `to`. */
function copyEntry(from: string, to: string) {
  if (isLink(from)) {
    fs.mkdirSync(path.dirname(to), { recursive: true });
    fs.symlinkSync(fs.readlinkSync(from), to);
  } else hardLink(from, to);
}

/** A package's files; its own node_modules are other packages (listed on their own) when `skipNested`. */
function copyTree(from: string, to: string, skipNested: boolean, skip: (rel: string) => boolean, rel = '') {
  for (const e of fs.readdirSync(from, { withFileTypes: true })) {
    const src = path.join(from, e.name);
    const dst = path.join(to, e.name);
    const relative = rel ? `${rel}/${e.name}` : e.name;
    if (NEVER.some((re) => re.test(src)) || skip(relative)) continue;
    if (e.isDirectory()) {
      if (skipNested && e.name === 'node_modules') continue;
      fs.mkdirSync(dst, { recursive: true });
      copyTree(src, dst, false, skip, relative);
    } else if (e.isSymbolicLink() || e.isFile()) copyEntry(src, dst);
  }
}

function listFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name));
}

/** The shared libraries (and the loader) a dynamically linked binary needs, by their paths here. */
async function sharedLibraries(binary: string): Promise<string[]> {
  const { stdout } = await exec('ldd', [binary]).catch(() => ({ stdout: '' }));
  return [...stdout.matchAll(/(?:=>\s*)?(\/\S+)\s+\(0x/g)].map((m) => m[1] as string);
}
