import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { childEnv } from '../core/child-env.ts';

const workflowsPath = fileURLToPath(new URL('./workflows/index.ts', import.meta.url));
const bundler = fileURLToPath(new URL('./bundle-workflows.mjs', import.meta.url));
/** Bundling takes seconds; on a busy machine far more than usual, never this long. */
const BUNDLE_TIMEOUT_MS = 300_000;

let bundled: Promise<{ code: string }> | undefined;

/**
 * The workflow bundle (workers/workflows/index.ts and what it imports), built once per process
 * in a child process (workers/bundle-workflows.mjs): the SDK's bundler is webpack, which would
 * otherwise stay loaded in the server for good (about 20 MiB of heap and code) to be used once.
 */
export function workflowBundle(): Promise<{ code: string }> {
  // Shared by the callers while it is being built, then forgotten: the worker that asked holds
  // it (a process has one workflow worker), and the code string (about 1.6 MiB) is not kept
  // for a second that never comes. A failed build is retried by the next caller.
  bundled ??= bundleInChild().finally(() => {
    bundled = undefined;
  });
  return bundled;
}

function bundleInChild(): Promise<{ code: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bundler, workflowsPath], {
      env: childEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: BUNDLE_TIMEOUT_MS,
    });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => {
      err = (err + c.toString()).slice(-8000);
    });
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code === 0) resolve({ code: Buffer.concat(out).toString('utf8') });
      else reject(new Error(`bundling the workflows failed (${signal ?? `exit ${code}`}): ${err.trim()}`));
    });
  });
}
