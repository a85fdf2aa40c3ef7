import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildAndPush } from './buildkit.ts';
import type { BaseImages } from './dockerfile.ts';

const STATIC_SERVER = path.join(import.meta.dirname, 'static-server.mjs');
const CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

type BaseName = keyof BaseImages;

/** How one base image is made from the tarballs `npm run setup` leaves in .tools/images. */
type BaseSpec = {
  name: BaseName;
  /** The base it is layered on (shares that base's layers in the registry and on nodes). */
  parent?: BaseName;
  /** Build-context files: name in the context → file (relative: in the images dir). */
  files: Record<string, string>;
  dockerfile: (parentRef: string) => string;
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
  {
    name: 'python',
    files: { 'python.tar': 'python.tar' },
    dockerfile: () =>
      lines(
        'FROM scratch',
        'ADD python.tar /',
        // Apps install into setup's venv (Debian's own Python is "externally managed").
        'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \\',
        `    PIP_CERT=${CA_BUNDLE} REQUESTS_CA_BUNDLE=${CA_BUNDLE} SSL_CERT_FILE=${CA_BUNDLE} \\`,
        '    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore PYTHONUNBUFFERED=1',
      ),
  },
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

async function publish(o: BaseImageOptions, spec: BaseSpec, parentRef: string): Promise<string> {
  const files = Object.entries(spec.files).map(([name, file]) => {
    const source = path.resolve(o.imagesDir, file);
    if (!fs.existsSync(source)) throw new Error(`${source} is missing: run npm run setup`);
    return { name, source: fs.realpathSync(source) };
  });
  const dockerfile = spec.dockerfile(parentRef);
  // The parent by tag alone: a tag names the same image in any registry.
  const hash = createHash('sha256').update(spec.dockerfile(parentRef && tagOf(parentRef)));
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
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `base-${spec.name}-`));
    try {
      for (const f of files) linkOrCopy(f.source, path.join(dir, f.name));
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
