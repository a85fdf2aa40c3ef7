import express, { type Request, type Response, type Router } from 'express';
import { createApiKey } from '../../core/api-keys.ts';
import { DomainError } from '../../core/errors.ts';
import type { AuthContext } from './context.ts';
import { disconnectClient, listConnectedClients } from './grants.ts';
import { type Html, html, sendErrorPage, sendPage } from './html.ts';
import { currentSession, type SignedIn } from './sessions.ts';

function nav(ctx: AuthContext, req: Request, res: Response, session: SignedIn) {
  const csrf = ctx.csrf.token(req, res, 'sign-out', session.sessionId);
  return html`<nav><a href="/account/keys">API keys</a><a href="/account/clients">Connected apps</a>
<form method="post" action="/sign-out" class="inline"><input type="hidden" name="csrf" value="${csrf}"><button class="secondary" type="submit">Sign out</button></form></nav>
<p class="muted">Signed in as ${session.email}</p>`;
}

const when = (d: Date | null) => (d ? d.toISOString().replace('T', ' ').slice(0, 16) : 'never');

/** /account/keys (create, shown once; list; revoke) and /account/clients (connected apps; disconnect). */
export function accountRoutes(ctx: AuthContext): Router {
  const router = express.Router();
  const form = express.urlencoded({ extended: false, limit: '16kb' });

  async function signedIn(req: Request, res: Response): Promise<SignedIn | undefined> {
    const session = await currentSession(ctx.db, req, ctx.now());
    if (!session)
      res.redirect(
        303,
        `/sign-in?return_to=${encodeURIComponent(req.path === '/account/clients' ? '/account/clients' : '/account/keys')}`,
      );
    return session;
  }

  async function keysPage(req: Request, res: Response, session: SignedIn, notice?: Html, status = 200) {
    const keys = await ctx.db.apiKey.findMany({
      where: { userId: session.userId },
      orderBy: { createdAt: 'asc' },
      select: { prefix: true, name: true, createdAt: true, lastUsedAt: true, revokedAt: true },
    });
    const createCsrf = ctx.csrf.token(req, res, 'key-create', session.sessionId);
    const revokeCsrf = ctx.csrf.token(req, res, 'key-revoke', session.sessionId);
    const rows = keys.map(
      (k) =>
        html`<tr><td><code>${k.prefix}…</code></td><td>${k.name}</td><td>${when(k.createdAt)}</td><td>${when(k.lastUsedAt)}</td><td>${
          k.revokedAt
            ? html`revoked`
            : html`<form method="post" action="/account/keys/revoke"><input type="hidden" name="prefix" value="${k.prefix}"><input type="hidden" name="csrf" value="${revokeCsrf}"><button class="danger" type="submit">Revoke ${k.name}</button></form>`
        }</td></tr>`,
    );
    sendPage(
      res,
      status,
      'API keys',
      html`${nav(ctx, req, res, session)}<h1>API keys</h1>${notice ?? html``}
<form method="post" action="/account/keys"><label for="name">New key name</label><input type="text" id="name" name="name" maxlength="64" required placeholder="laptop"><input type="hidden" name="csrf" value="${createCsrf}"><button type="submit">Create key</button></form>
${keys.length ? html`<table><thead><tr><th>Key</th><th>Name</th><th>Created</th><th>Last used</th><th></th></tr></thead><tbody>${rows}</tbody></table>` : html`<p class="muted">No keys yet.</p>`}`,
    );
  }

  router.get('/account/keys', async (req, res) => {
    const session = await signedIn(req, res);
    if (session) await keysPage(req, res, session);
  });

  router.post('/account/keys', form, async (req, res) => {
    const session = await signedIn(req, res);
    if (!session) return;
    const body = req.body as Record<string, unknown>;
    if (!ctx.csrf.check(req, body.csrf, 'key-create', session.sessionId))
      return sendErrorPage(res, 403, 'This form expired or did not come from this site.');
    try {
      const { key, prefix } = await createApiKey(
        ctx.db,
        session.userId,
        typeof body.name === 'string' ? body.name.trim() : '',
      );
      await ctx.db.auditEvent.create({
        data: {
          userId: session.userId,
          actor: 'user',
          action: 'api_key.create',
          targetType: 'api_key',
          targetId: prefix,
        },
      });
      await keysPage(
        req,
        res,
        session,
        html`<p><strong>Your new key. It is shown once: copy it now.</strong></p><code class="secret" id="new-key">${key}</code><p class="muted">Use it as <code>Authorization: Bearer &lt;key&gt;</code>.</p>`,
      );
    } catch (err) {
      if (err instanceof DomainError)
        return keysPage(req, res, session, html`<p class="error" role="alert">${err.message}</p>`, 400);
      throw err;
    }
  });

  router.post('/account/keys/revoke', form, async (req, res) => {
    const session = await signedIn(req, res);
    if (!session) return;
    const body = req.body as Record<string, unknown>;
    if (!ctx.csrf.check(req, body.csrf, 'key-revoke', session.sessionId))
      return sendErrorPage(res, 403, 'This form expired or did not come from this site.');
    const prefix = typeof body.prefix === 'string' ? body.prefix : '';
    // Scoped to the signed-in user: another user's prefix matches nothing.
    const revoked = await ctx.db.apiKey.updateMany({
      where: { prefix, userId: session.userId, revokedAt: null },
      data: { revokedAt: ctx.now() },
    });
    if (revoked.count)
      await ctx.db.auditEvent.create({
        data: {
          userId: session.userId,
          actor: 'user',
          action: 'api_key.revoke',
          targetType: 'api_key',
          targetId: prefix,
        },
      });
    await keysPage(
      req,
      res,
      session,
      revoked.count
        ? html`<p>Key <code>${prefix}…</code> revoked.</p>`
        : html`<p class="error" role="alert">No such active key.</p>`,
      revoked.count ? 200 : 404,
    );
  });

  async function clientsPage(req: Request, res: Response, session: SignedIn, notice?: Html) {
    const clients = await listConnectedClients(ctx.db, session.userId, ctx.now());
    const csrf = ctx.csrf.token(req, res, 'client-disconnect', session.sessionId);
    const rows = clients.map(
      (c) =>
        html`<tr><td><strong>${c.name}</strong><br><span class="muted"><code>${c.clientId}</code></span></td><td>${c.redirectHosts.join(', ')}</td><td>${when(c.since)}</td><td><form method="post" action="/account/clients/disconnect"><input type="hidden" name="client_id" value="${c.clientId}"><input type="hidden" name="csrf" value="${csrf}"><button class="danger" type="submit">Disconnect ${c.name}</button></form></td></tr>`,
    );
    sendPage(
      res,
      200,
      'Connected apps',
      html`${nav(ctx, req, res, session)}<h1>Connected apps</h1>${notice ?? html``}
${clients.length ? html`<table><thead><tr><th>App</th><th>Sends you back to</th><th>Connected</th><th></th></tr></thead><tbody>${rows}</tbody></table>` : html`<p class="muted">No app is connected.</p>`}
<p class="muted">Disconnecting an app ends its access at once: its next request is refused.</p>`,
    );
  }

  router.get('/account/clients', async (req, res) => {
    const session = await signedIn(req, res);
    if (session) await clientsPage(req, res, session);
  });

  router.post('/account/clients/disconnect', form, async (req, res) => {
    const session = await signedIn(req, res);
    if (!session) return;
    const body = req.body as Record<string, unknown>;
    if (!ctx.csrf.check(req, body.csrf, 'client-disconnect', session.sessionId))
      return sendErrorPage(res, 403, 'This form expired or did not come from this site.');
    const clientId = typeof body.client_id === 'string' ? body.client_id : '';
    const n = await disconnectClient(ctx.db, session.userId, clientId, ctx.now());
    if (n)
      await ctx.db.auditEvent.create({
        data: {
          userId: session.userId,
          actor: 'user',
          action: 'oauth.disconnect',
          targetType: 'oauth_client',
          targetId: clientId.slice(0, 200),
        },
      });
    await clientsPage(
      req,
      res,
      session,
      n ? html`<p>Disconnected.</p>` : html`<p class="error" role="alert">That app was not connected.</p>`,
    );
  });

  return router;
}
