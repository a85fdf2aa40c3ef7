import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { MEMORY_LABEL } from '../../core/daemons/buildkit.ts';
import { clip, explainBuildFailure, isPipNoise } from '../deploy/diagnosis.ts';

const execFileAsync = promisify(execFile);

/**
 * Base images a user's Dockerfile names with a stable name, `FROM deploy-mcp/<name>`: BuildKit
 * resolves each (a named build context) to `<registry>/deploy-mcp/<name>:latest` in the registry
 * the image is pushed to. ensureBaseImages (base-images.ts) publishes them.
 */
export const BASE_IMAGE_NAMES = ['runtime', 'node', 'python', 'go'] as const;

export type BuildOptions = {
  /** buildkitd address, e.g. "unix:///…/buildkitd.sock". */
  address: string;
  /** Directory sent as the build context. */
  contextDir: string;
  /** Directory holding the Dockerfile. */
  dockerfileDir: string;
  /** Image reference to push, e.g. "127.0.0.1:5000/t/app:abc123". */
  imageRef: string;
  /** BuildKit secrets: id → file. Their contents never enter a layer or the log. */
  secrets?: Record<string, string>;
  /** Where `FROM deploy-mcp/<name>` resolves: `<prefix>/<name>:latest` (default `<registry>/deploy-mcp`). */
  baseImagePrefix?: string;
  /** Layer compression of the pushed image (default gzip). */
  compression?: 'gzip' | 'uncompressed';
  /** Kill the build after this long. */
  timeoutMs: number;
  /** Called with each line of BuildKit's plain progress output. */
  onLog: (line: string) => void;
  /** Stops the build (buildctl is killed; BuildKit cancels the solve). */
  signal?: AbortSignal;
};

export class BuildError extends Error {
  override name = 'BuildError';
  /** The last lines of the build output, for the user. */
  readonly logTail: string[];

  constructor(message: string, logTail: string[]) {
    super(message);
    this.logTail = logTail;
  }
}

/**
 * Builds with buildctl (Dockerfile frontend) and pushes; resolves with the image digest. A build
 * that BuildKit itself gave up on before any step failed, for want of time ("context deadline
 * exceeded", e.g. "no active session …" when buildctl's session comes late on a busy machine),
 * is tried once more: nothing of it was built wrong, and the next try is cached.
 */
export async function buildAndPush(o: BuildOptions): Promise<string> {
  try {
    return await buildOnce(o);
  } catch (err) {
    if (!(err instanceof BuildError) || !buildKitTimedOut(err.logTail) || o.signal?.aborted) throw err;
    o.onLog(`BuildKit timed out before the build began (${err.message}): trying once more`);
    return buildOnce(o);
  }
}

/** BuildKit's own error is a deadline (no step failed): a busy daemon, not the build. */
export function buildKitTimedOut(tail: string[]): boolean {
  if (tail.some((l) => /^#\d+ ERROR:/.test(l))) return false;
  const errors = tail.filter((l) => /^error:|failed to solve/i.test(l.trim()));
  return errors.some((l) => /context deadline exceeded|no active session/i.test(l));
}

async function buildOnce(o: BuildOptions): Promise<string> {
  const metadataFile = path.join(o.dockerfileDir, '.build-metadata.json');
  const registry = o.imageRef.slice(0, o.imageRef.indexOf('/'));
  const args = [
    '--addr',
    o.address,
    // buildctl gives up connecting after 5 s by default ("context deadline exceeded"): on a
    // busy machine buildkitd can take longer to accept, and the build failed before it began.
    '--timeout',
    '60',
    'build',
    '--progress',
    'plain',
    '--frontend',
    'dockerfile.v0',
    '--local',
    `context=${o.contextDir}`,
    '--local',
    `dockerfile=${o.dockerfileDir}`,
    '--output',
    `type=image,name=${o.imageRef},push=true,registry.insecure=true,compression=${o.compression ?? 'gzip'}`,
    '--metadata-file',
    metadataFile,
    ...Object.entries(o.secrets ?? {}).flatMap(([id, src]) => ['--secret', `id=${id},src=${src}`]),
    ...BASE_IMAGE_NAMES.flatMap((name) => [
      '--opt',
      `context:deploy-mcp/${name}=docker-image://${o.baseImagePrefix ?? `${registry}/deploy-mcp`}/${name}:latest`,
    ]),
  ];
  const tail: string[] = [];
  const child = spawn('buildctl', args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(o.signal ? { signal: o.signal } : {}),
  });
  let partial = '';
  const onData = (chunk: Buffer) => {
    const lines = (partial + chunk.toString('utf8')).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      tail.push(line);
      if (tail.length > 200) tail.shift();
      o.onLog(line);
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, o.timeoutMs);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  }).finally(() => clearTimeout(timer));
  if (partial) tail.push(partial);
  if (timedOut)
    throw new BuildError(
      `the build took longer than ${Math.round(o.timeoutMs / 1000)} s and was stopped`,
      tail,
    );
  if (code !== 0) {
    const memoryLimitMb = killedStep(tail) ? await workerMemoryLimit(o.address) : undefined;
    throw new BuildError(describeFailure(tail, { memoryLimitMb }), tail);
  }
  const metadata = JSON.parse(fs.readFileSync(metadataFile, 'utf8')) as { 'containerimage.digest'?: string };
  fs.rmSync(metadataFile, { force: true });
  const digest = metadata['containerimage.digest'];
  if (!digest) throw new BuildError('the build finished without an image digest', tail);
  return digest;
}

/**
 * What went wrong, in the build's own words: the failing step and the error lines it printed
 * (e.g. "npm error …", else its last lines), else BuildKit's own error. A step the kernel killed
 * (exit code 137) under the daemon's memory cap ran out of memory.
 */
export function describeFailure(tail: string[], o: { memoryLimitMb?: number | undefined } = {}): string {
  const failed = [...tail].reverse().find((l) => /^#\d+ ERROR:/.test(l));
  const step = failed?.match(/^#(\d+) /)?.[1];
  const stepLine = step && tail.find((l) => l.startsWith(`#${step} [`))?.replace(/^#\d+ /, '');
  const stepName = stepLine && readableStep(stepLine);
  if (stepName && killedStep(tail)) {
    return o.memoryLimitMb
      ? `the build ran out of memory (limit ${o.memoryLimitMb} MiB) at step ${stepName}`
      : `build failed at ${stepName}: the step was killed (exit code 137), most likely out of memory`;
  }
  const output = step
    ? tail
        .filter((l) => new RegExp(`^#${step} \\d+\\.\\d+ `).test(l))
        .map((l) => l.replace(/^#\d+ [\d.]+ /, '').trim())
        .filter((l) => l && !/complete log of this run/i.test(l))
    : [];
  // A known cause (diagnosis.ts) is named with what to do, in place of the raw lines.
  const cause = explainBuildFailure(tail);
  if (cause) return stepName ? `build failed at ${stepName}: ${cause}` : `build failed: ${cause}`;
  const errors = output.filter((l) => !isPipNoise(l) && /error|ERR!|fatal|not found|cannot/i.test(l));
  const solve = [...tail].reverse().find((l) => /^error:|failed to solve/i.test(l.trim()));
  const own = (errors.length ? errors : output.filter((l) => !isPipNoise(l))).slice(-3).map((l) => clip(l));
  const summary = own.length
    ? own.join(' / ')
    : clip((solve ?? failed ?? 'the build failed').replace(/^error:\s*/i, '').trim(), 600);
  return stepName ? `build failed at ${stepName}: ${summary}` : `build failed: ${summary}`;
}

/**
 * A generated RUN step as the user wrote it: "[stage-0 4/5] RUN pip install -r requirements.txt",
 * without the mount flags and the preamble that loads the build-time env vars (run-step.ts).
 */
function readableStep(line: string): string {
  const bare = line.replace(/ --mount=\S+/g, '');
  const m = bare.match(/^(.*? RUN )\["sh","-c","set -a; .*?; set \+a; (.*)"\]$/);
  if (!m?.[1] || m[2] === undefined) return bare;
  try {
    return `${m[1]}${JSON.parse(`"${m[2]}"`) as string}`;
  } catch {
    return bare;
  }
}

/** True when the failing step was killed with SIGKILL (what the kernel's OOM killer sends). */
function killedStep(tail: string[]): boolean {
  const failed = [...tail].reverse().find((l) => /^#\d+ ERROR:/.test(l));
  return /exit code: 137\b/.test(failed ?? '');
}

/** The memory cap the daemon's worker advertises (core/daemons/buildkit.ts), if any. */
async function workerMemoryLimit(address: string): Promise<number | undefined> {
  try {
    const { stdout } = await execFileAsync('buildctl', [
      '--addr',
      address,
      'debug',
      'workers',
      '--format',
      '{{json .}}',
    ]);
    const workers = JSON.parse(stdout) as { labels?: Record<string, string> }[];
    const mb = Number(workers[0]?.labels?.[MEMORY_LABEL]);
    return mb > 0 ? mb : undefined;
  } catch {
    return undefined;
  }
}
