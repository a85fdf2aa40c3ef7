import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

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
  /** Kill the build after this long. */
  timeoutMs: number;
  /** Called with each line of BuildKit's plain progress output. */
  onLog: (line: string) => void;
};

export class BuildError extends Error {
  override name = 'BuildError';
  constructor(
    message: string,
    /** The last lines of the build output, for the user. */
    readonly logTail: string[],
  ) {
    super(message);
  }
}

/** Builds with buildctl (Dockerfile frontend) and pushes; resolves with the image digest. */
export async function buildAndPush(o: BuildOptions): Promise<string> {
  const metadataFile = path.join(o.dockerfileDir, '.build-metadata.json');
  const args = [
    '--addr',
    o.address,
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
    `type=image,name=${o.imageRef},push=true,registry.insecure=true`,
    '--metadata-file',
    metadataFile,
    ...Object.entries(o.secrets ?? {}).flatMap(([id, src]) => ['--secret', `id=${id},src=${src}`]),
  ];
  const tail: string[] = [];
  const child = spawn('buildctl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
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
  if (code !== 0) throw new BuildError(describeFailure(tail), tail);
  const metadata = JSON.parse(fs.readFileSync(metadataFile, 'utf8')) as { 'containerimage.digest'?: string };
  fs.rmSync(metadataFile, { force: true });
  const digest = metadata['containerimage.digest'];
  if (!digest) throw new BuildError('the build finished without an image digest', tail);
  return digest;
}

/**
 * What went wrong, in the build's own words: the failing step and the error lines it printed
 * (e.g. "npm error …"), else BuildKit's own error.
 */
export function describeFailure(tail: string[]): string {
  const failed = [...tail].reverse().find((l) => /^#\d+ ERROR:/.test(l));
  const step = failed?.match(/^#(\d+) /)?.[1];
  const stepName = step && tail.find((l) => l.startsWith(`#${step} [`))?.replace(/^#\d+ /, '');
  const errors = step
    ? tail
        .filter(
          (l) =>
            l.startsWith(`#${step} `) && !/ ERROR:/.test(l) && /error|ERR!|fatal|not found|cannot/i.test(l),
        )
        .map((l) => l.replace(/^#\d+ [\d.]+ /, '').trim())
        .filter((l) => !/complete log of this run/i.test(l))
        .slice(-3)
    : [];
  const solve = [...tail].reverse().find((l) => /^error:|failed to solve/i.test(l.trim()));
  const summary = errors.length
    ? errors.join(' / ')
    : (solve ?? failed ?? 'the build failed').replace(/^error:\s*/i, '').trim();
  return stepName ? `build failed at ${stepName}: ${summary}` : `build failed: ${summary}`;
}
