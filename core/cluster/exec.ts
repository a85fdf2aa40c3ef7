import { execFile } from 'node:child_process';
import { childEnv } from '../child-env.ts';

/** PATH of the cluster's host tools and daemons (containerd finds its shim and runc there). */
export const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export class CommandError extends Error {
  override name = 'CommandError';
  readonly stderr: string;

  constructor(message: string, stderr: string) {
    super(message);
    this.stderr = stderr;
  }
}

/**
 * Runs a host command with an explicit environment and resolves with its stdout; a failure
 * carries the command and the end of its stderr.
 */
export function run(
  command: string,
  args: string[],
  options: {
    env?: Record<string, string | undefined>;
    cwd?: string;
    input?: string;
    timeoutMs?: number;
  } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      command,
      args,
      {
        env: childEnv({ PATH: SYSTEM_PATH, ...options.env }),
        cwd: options.cwd,
        timeout: options.timeoutMs ?? 120_000,
        maxBuffer: 64 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        if (err) {
          const tail = String(stderr).trim().split('\n').slice(-8).join('\n');
          reject(
            new CommandError(`${command} ${args.join(' ')} failed: ${tail || err.message}`, String(stderr)),
          );
        } else {
          resolve(String(stdout));
        }
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}
