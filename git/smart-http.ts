import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Request, Response } from 'express';
import type { Db } from '../core/db/client.ts';
import type { Logger } from '../core/log.ts';
import { BodyTooLarge, runHttpBackend } from './http-backend.ts';
import { parseRefUpdates, recordPush } from './push-events.ts';
import type { RepoStore } from './repo-store.ts';
import { verifyGitToken } from './tokens.ts';

export type GitHttpDeps = {
  db: Db;
  store: RepoStore;
  log: Logger;
  /** Told about new deploy requests after a push (the deploy pipeline picks them up). */
  onDeployRequested?: (requestIds: string[]) => void;
};

// Only the smart protocol's three endpoints; the dumb protocol (raw object files) is not served.
const PATH =
  /^\/([a-z0-9][a-z0-9-]{0,62})\/([a-z][a-z0-9-]{0,62})\.git\/(info\/refs|git-upload-pack|git-receive-pack)$/;
const CHALLENGE = 'Basic realm="Deploy MCP git", charset="UTF-8"';

/** One git smart-HTTP request under /git: /<owner>/<repo>.git/… with a token as Basic password. */
export async function handleGitRequest(deps: GitHttpDeps, req: Request, res: Response): Promise<void> {
  const m = PATH.exec(req.path);
  if (!m) {
    res.status(404).type('text/plain').send('not a git repository URL: use /git/<owner>/<repo>.git\n');
    return;
  }
  const [, owner = '', name = '', endpoint = ''] = m;
  const service = endpoint === 'info/refs' ? req.query.service : endpoint;
  if (service !== 'git-upload-pack' && service !== 'git-receive-pack') {
    res.status(403).type('text/plain').send('only the git smart HTTP protocol is supported\n');
    return;
  }
  if (req.method !== (endpoint === 'info/refs' ? 'GET' : 'POST')) {
    res.status(405).type('text/plain').send('method not allowed\n');
    return;
  }
  const need = service === 'git-receive-pack' ? 'push' : 'pull';
  const password = basicPassword(req.headers.authorization);
  const repo = password
    ? await deps.db.repo.findUnique({
        where: { host_ownerName_name: { host: 'internal', ownerName: owner, name } },
      })
    : null;
  // Unknown repo, another user's repo, wrong scope, expired or revoked: all the same answer.
  if (!password || !repo || !(await verifyGitToken(deps.db, password, repo.id, need))) {
    res.set('www-authenticate', CHALLENGE);
    res
      .status(401)
      .type('text/plain')
      .send(
        password ? 'invalid, expired or revoked token for this repository\n' : 'authentication required\n',
      );
    return;
  }

  const isPush = endpoint === 'git-receive-pack';
  const pushLog = isPush ? path.join(os.tmpdir(), `deploy-mcp-push-${randomUUID()}`) : undefined;
  try {
    await runHttpBackend(req, res, {
      projectRoot: deps.store.root,
      pathInfo: `/${owner}/${name}.git/${endpoint}`,
      remoteUser: owner,
      env: {
        ...(pushLog ? { DEPLOY_MCP_PUSH_LOG: pushLog } : {}),
        DEPLOY_MCP_MAX_REPO_BYTES: String(deps.store.limits.maxRepoBytes),
      },
      // The pack itself is capped by receive.maxInputSize; this bounds anything else.
      maxBodyBytes: deps.store.limits.maxPushBytes + 1024 * 1024,
    });
  } catch (err) {
    if (!(err instanceof BodyTooLarge)) throw err;
    deps.log.warn({ owner, name }, 'git push body over the limit');
  } finally {
    if (pushLog) await afterPush(deps, repo.id, owner, name, pushLog);
  }
}

async function afterPush(deps: GitHttpDeps, repoId: string, owner: string, name: string, pushLog: string) {
  let text = '';
  try {
    text = fs.readFileSync(pushLog, 'utf8');
  } catch {
    return; // the hook did not run: nothing was accepted
  } finally {
    fs.rmSync(pushLog, { force: true });
  }
  const updates = parseRefUpdates(text);
  if (!updates.length) return;
  const requests = await recordPush(deps.db, repoId, updates);
  const sizeBytes = await deps.store.sizeBytes(owner, name);
  await deps.db.repo.update({ where: { id: repoId }, data: { sizeBytes: BigInt(sizeBytes) } });
  deps.log.info(
    { owner, name, refs: updates.map((u) => u.ref), deployRequests: requests.length },
    'git push',
  );
  if (requests.length) deps.onDeployRequested?.(requests);
}

function basicPassword(header: string | undefined): string | undefined {
  if (!header?.toLowerCase().startsWith('basic ')) return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon === -1 ? undefined : decoded.slice(colon + 1) || undefined;
}
