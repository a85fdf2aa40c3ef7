import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { childEnv } from '../core/child-env.ts';

const execFileAsync = promisify(execFile);
/** git and du get an explicit environment (nothing of the server's settings). */
const run = (command: string, args: string[]) => execFileAsync(command, args, { env: childEnv() });

export type RepoLimits = {
  /** Largest pack one push may send (git's receive.maxInputSize). */
  maxPushBytes: number;
  /** Largest a repository may grow; a push that would pass it is rejected whole. */
  maxRepoBytes: number;
};

// post-receive: appends "<old> <new> <ref>" lines to the file the server named for this push.
const POST_RECEIVE = `#!/bin/sh
[ -n "$DEPLOY_MCP_PUSH_LOG" ] && cat >> "$DEPLOY_MCP_PUSH_LOG"
exit 0
`;

// pre-receive: new objects sit in the quarantine inside objects/ until this hook accepts them,
// so the size of objects/ is the size the repository would have.
const PRE_RECEIVE = `#!/bin/sh
max="\${DEPLOY_MCP_MAX_REPO_BYTES:-0}"
[ "$max" -gt 0 ] || exit 0
size=$(du -sb "$GIT_DIR/objects" | cut -f1)
if [ "$size" -gt "$max" ]; then
  echo "error: push rejected: the repository would be $((size / 1048576)) MiB; the limit is $((max / 1048576)) MiB" >&2
  exit 1
fi
exit 0
`;

/** Bare repositories on disk: <root>/<owner>/<name>.git. */
export class RepoStore {
  readonly root: string;
  readonly limits: RepoLimits;

  constructor(root: string, limits: RepoLimits) {
    this.root = root;
    this.limits = limits;
  }

  dir(owner: string, name: string): string {
    return path.join(this.root, owner, `${name}.git`);
  }

  /** Creates the bare repository if it is missing (idempotent); returns its directory. */
  async ensure(owner: string, name: string): Promise<string> {
    const dir = this.dir(owner, name);
    if (fs.existsSync(path.join(dir, 'HEAD'))) return dir;
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    // Built aside and renamed into place, so a crash never leaves a half-made repository.
    const tmp = `${dir}.tmp-${process.pid}-${Date.now()}`;
    try {
      await run('git', ['init', '--quiet', '--bare', '--initial-branch=main', tmp]);
      const config = [
        ['receive.maxInputSize', String(this.limits.maxPushBytes)],
        ['http.receivepack', 'true'],
        ['receive.fsckObjects', 'true'],
      ];
      for (const [key, value] of config)
        await run('git', ['--git-dir', tmp, 'config', key ?? '', value ?? '']);
      fs.writeFileSync(path.join(tmp, 'hooks', 'post-receive'), POST_RECEIVE, { mode: 0o755 });
      fs.writeFileSync(path.join(tmp, 'hooks', 'pre-receive'), PRE_RECEIVE, { mode: 0o755 });
      fs.renameSync(tmp, dir);
    } catch (err) {
      fs.rmSync(tmp, { recursive: true, force: true });
      // A concurrent create won the rename: that repository is as good as ours.
      if (fs.existsSync(path.join(dir, 'HEAD'))) return dir;
      throw err;
    }
    return dir;
  }

  /** Bytes the repository takes on disk. */
  async sizeBytes(owner: string, name: string): Promise<number> {
    const { stdout } = await run('du', ['-sb', this.dir(owner, name)]);
    return Number(stdout.split('\t')[0]);
  }
}
