import { createHash } from 'node:crypto';
import express, { type Request, type Response, type Router } from 'express';
import type { Db } from '../../core/db/client.ts';
import { isUniqueViolation } from '../../core/db/unique-violation.ts';
import { recordInstallation, usersOfInstallation } from '../../core/github/accounts.ts';
import type { GitHubApp } from '../../core/github/app.ts';
import { validWebhookSignature } from '../../core/github/signature.ts';
import type { Logger } from '../../core/log.ts';
import type { DeployStarter } from '../deploy/start-deploy.ts';

export type GitHubWebhookDeps = {
  db: Db;
  log: Logger;
  /** The App's webhook secret; undefined: every delivery is refused with 401. */
  secret: string | undefined;
  /** The App, to learn an installation's account when no installation event was seen. */
  github: GitHubApp | undefined;
  deploys: DeployStarter;
};

/** GitHub caps webhook payloads at 25 MB. */
const MAX_BODY = '25mb';
const DELIVERY_ID = /^[A-Za-z0-9-]{1,100}$/;
const BRANCH_PREFIX = 'refs/heads/';
const ZERO = /^0+$/;

/**
 * POST /webhooks/github (the deployer-server role). In order: the HMAC-SHA256 signature over the
 * raw body, in constant time, before anything is parsed (no secret configured: 401 for all);
 * then the delivery id is recorded once (a redelivery answers 200 and starts nothing); then 202
 * at once, with the work done after the answer.
 */
export function githubWebhookRouter(deps: GitHubWebhookDeps): Router {
  const router = express.Router();
  router.post(
    '/webhooks/github',
    express.raw({ type: () => true, limit: MAX_BODY }),
    (req: Request, res: Response, next) => {
      receive(deps, req, res).catch(next);
    },
  );
  return router;
}

async function receive(deps: GitHubWebhookDeps, req: Request, res: Response) {
  const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
  if (!validWebhookSignature(deps.secret, raw, req.get('x-hub-signature-256'))) {
    res.status(401).json({ error: deps.secret ? 'invalid signature' : 'webhooks are not configured' });
    return;
  }
  const deliveryId = req.get('x-github-delivery') ?? '';
  const event = req.get('x-github-event') ?? '';
  if (!DELIVERY_ID.test(deliveryId) || !event) {
    res.status(400).json({ error: 'missing X-GitHub-Delivery or X-GitHub-Event' });
    return;
  }
  let payload: unknown;
  try {
    payload = JSON.parse(raw.toString('utf8'));
  } catch {
    res.status(400).json({ error: 'the body is not JSON' });
    return;
  }
  try {
    await deps.db.webhookDelivery.create({
      data: {
        provider: 'github',
        deliveryId,
        event,
        signatureValid: true,
        status: 'received',
        payloadDigest: createHash('sha256').update(raw).digest('hex'),
      },
    });
  } catch (err) {
    if (!isUniqueViolation(err)) throw err;
    res.status(200).json({ status: 'duplicate', delivery: deliveryId });
    return;
  }
  res.status(202).json({ status: 'accepted', delivery: deliveryId });
  setImmediate(() => {
    void handle(deps, event, payload).then(
      (outcome) => finish(deps, deliveryId, outcome, null),
      (err: unknown) => {
        deps.log.error({ err, deliveryId, event }, 'github webhook failed');
        return finish(
          deps,
          deliveryId,
          'failed',
          err instanceof Error ? err.message.slice(0, 500) : 'failed',
        );
      },
    );
  });
}

async function finish(deps: GitHubWebhookDeps, deliveryId: string, status: string, error: string | null) {
  await deps.db.webhookDelivery
    .update({ where: { provider_deliveryId: { provider: 'github', deliveryId } }, data: { status, error } })
    .catch((err: unknown) => deps.log.warn({ err, deliveryId }, 'recording a webhook outcome failed'));
}

type Account = { login?: unknown; type?: unknown };
type Payload = {
  action?: unknown;
  installation?: { id?: unknown; account?: Account | null };
  ref?: unknown;
  after?: unknown;
  deleted?: unknown;
  repository?: { name?: unknown; owner?: { login?: unknown; name?: unknown } };
};

/** The delivery's work; returns the outcome recorded on it (accepted: acted on; ignored). */
async function handle(deps: GitHubWebhookDeps, event: string, body: unknown): Promise<string> {
  const p = (body ?? {}) as Payload;
  const installationId = typeof p.installation?.id === 'number' ? p.installation.id : undefined;
  if (event === 'installation' && installationId !== undefined) {
    const login = p.installation?.account?.login;
    if (typeof login !== 'string') return 'ignored';
    const installation = {
      id: installationId,
      accountLogin: login.toLowerCase(),
      accountType: typeof p.installation?.account?.type === 'string' ? p.installation.account.type : 'User',
    };
    if (p.action === 'created' || p.action === 'unsuspend') await recordInstallation(deps.db, installation);
    else if (p.action === 'deleted' || p.action === 'suspend')
      await recordInstallation(deps.db, installation, true);
    else return 'ignored';
    deps.log.info(
      { installationId, account: installation.accountLogin, action: p.action },
      'github installation',
    );
    return 'accepted';
  }
  if (event !== 'push' || installationId === undefined) return 'ignored';
  const owner = p.repository?.owner?.login ?? p.repository?.owner?.name;
  const name = p.repository?.name;
  if (
    typeof owner !== 'string' ||
    typeof name !== 'string' ||
    typeof p.ref !== 'string' ||
    typeof p.after !== 'string' ||
    !p.ref.startsWith(BRANCH_PREFIX) ||
    p.deleted === true ||
    ZERO.test(p.after) ||
    !/^[0-9a-f]{40}$/.test(p.after)
  )
    return 'ignored';
  return pushed(
    deps,
    installationId,
    owner.toLowerCase(),
    name.toLowerCase(),
    p.ref.slice(BRANCH_PREFIX.length),
    p.after,
  );
}

/**
 * A push to `owner/name`: redeploys the live services tracking that branch, only those of the
 * users linked to the account the (signed) installation id belongs to, and only once per
 * service and commit.
 */
async function pushed(
  deps: GitHubWebhookDeps,
  installationId: number,
  owner: string,
  name: string,
  branch: string,
  sha: string,
): Promise<string> {
  const account = await installationAccount(deps, installationId);
  if (!account) return 'ignored';
  const users = await usersOfInstallation(deps.db, account);
  const repo = await deps.db.repo.findUnique({
    where: { host_ownerName_name: { host: 'github', ownerName: owner, name } },
  });
  if (!repo || !users.includes(repo.userId)) return 'ignored';
  const services = await deps.db.service.findMany({
    where: { repoId: repo.id, branch, deletedAt: null, userId: { in: users } },
    select: { id: true },
  });
  const requests: string[] = [];
  for (const s of services) {
    try {
      const r = await deps.db.deployRequest.create({
        data: {
          serviceId: s.id,
          repoId: repo.id,
          branch,
          commitSha: sha,
          dedupeKey: `${s.id}:${branch}:${sha}`,
        },
      });
      requests.push(r.id);
    } catch (err) {
      if (!isUniqueViolation(err)) throw err; // this commit was already asked for
    }
  }
  deps.log.info({ owner, name, branch, services: services.length, requests: requests.length }, 'github push');
  if (!requests.length) return 'ignored';
  await deps.deploys.startRequested(requests);
  return 'accepted';
}

/** The account login of an installation: as recorded from its events, else asked of the App API. */
async function installationAccount(deps: GitHubWebhookDeps, installationId: number): Promise<string | null> {
  const row = await deps.db.gitHubInstallation.findUnique({ where: { installationId } });
  if (row) return row.deletedAt ? null : row.accountLogin;
  const found = await deps.github?.installationById(installationId);
  if (!found) return null;
  await recordInstallation(deps.db, found);
  return found.accountLogin;
}
