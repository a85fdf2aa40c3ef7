import type { Request, Response } from 'express';
import { ClientError, findClient, type OAuthClientRecord, redirectUriMatches } from './clients.ts';
import type { AuthContext } from './context.ts';
import { issueCode } from './grants.ts';
import { html, sendErrorPage, sendPage } from './html.ts';
import { currentSession } from './sessions.ts';

/** The one scope there is: use the tools as the signed-in user. */
export const SCOPE = 'mcp';

type Params = Record<string, string | undefined>;

type Checked =
  | { kind: 'page'; status: number; message: string }
  | { kind: 'redirect'; url: string }
  | {
      kind: 'ok';
      client: OAuthClientRecord;
      redirectUri: string;
      codeChallenge: string;
      scope: string;
      resource: string;
      state: string | undefined;
    };

function param(source: unknown, name: string): string | undefined {
  const v = (source as Record<string, unknown> | undefined)?.[name];
  return typeof v === 'string' ? v : undefined;
}

export function authorizeParams(source: unknown): Params {
  const names = [
    'response_type',
    'client_id',
    'redirect_uri',
    'code_challenge',
    'code_challenge_method',
    'state',
    'scope',
    'resource',
  ];
  return Object.fromEntries(names.map((n) => [n, param(source, n)]));
}

/** The redirect that carries an authorization response: `state` and `iss` always echoed (RFC 9207). */
export function responseUrl(
  ctx: AuthContext,
  redirectUri: string,
  values: Record<string, string>,
  state: string | undefined,
) {
  const url = new URL(redirectUri);
  for (const [k, v] of Object.entries(values)) url.searchParams.set(k, v);
  if (state !== undefined) url.searchParams.set('state', state);
  url.searchParams.set('iss', ctx.issuer);
  return url.toString();
}

/**
 * Validates an authorization request. Until the client and its redirect URI are known good,
 * failures are an error page (never a redirect: an unchecked redirect_uri is an open redirector);
 * after that they go back to the client as `error=` redirects.
 */
export async function checkAuthorizeRequest(ctx: AuthContext, p: Params): Promise<Checked> {
  if (!p.client_id)
    return { kind: 'page', status: 400, message: 'The request names no client (client_id is missing).' };
  let client: OAuthClientRecord | undefined;
  try {
    client = await findClient(ctx.db, p.client_id, ctx.now(), ctx.metadataFetch);
  } catch (err) {
    if (err instanceof ClientError) return { kind: 'page', status: 400, message: err.message };
    throw err;
  }
  if (!client)
    return { kind: 'page', status: 400, message: 'Unknown client: it is not registered with this server.' };
  if (!p.redirect_uri) return { kind: 'page', status: 400, message: 'The request has no redirect_uri.' };
  const redirectUri = p.redirect_uri;
  if (!client.redirectUris.some((r) => redirectUriMatches(r, redirectUri)))
    return { kind: 'page', status: 400, message: 'The redirect_uri is not one the client registered.' };
  const fail = (error: string, description: string): Checked => ({
    kind: 'redirect',
    url: responseUrl(ctx, redirectUri, { error, error_description: description }, p.state),
  });
  if (p.response_type !== 'code')
    return fail('unsupported_response_type', 'only response_type=code is supported');
  if (!p.code_challenge) return fail('invalid_request', 'code_challenge is required (PKCE with S256)');
  if (p.code_challenge_method !== 'S256')
    return fail('invalid_request', 'code_challenge_method must be S256');
  if (!/^[A-Za-z0-9_-]{43}$/.test(p.code_challenge))
    return fail('invalid_request', 'code_challenge must be a base64url SHA-256 (43 characters)');
  const resource = p.resource ?? ctx.resource;
  if (resource !== ctx.resource) return fail('invalid_target', `the only resource here is ${ctx.resource}`);
  const scopes = (p.scope ?? SCOPE).split(' ').filter(Boolean);
  if (scopes.some((s) => s !== SCOPE)) return fail('invalid_scope', `the only scope is "${SCOPE}"`);
  if (p.state !== undefined && p.state.length > 1000)
    return fail('invalid_request', 'state is longer than 1000 characters');
  return {
    kind: 'ok',
    client,
    redirectUri,
    codeChallenge: p.code_challenge,
    scope: SCOPE,
    resource,
    state: p.state,
  };
}

function hidden(p: Params) {
  return Object.entries(p)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => html`<input type="hidden" name="${k}" value="${v}">`);
}

/** GET /authorize: the consent page, after sign-in. */
export async function authorizeGet(ctx: AuthContext, req: Request, res: Response) {
  const p = authorizeParams(req.query);
  const checked = await checkAuthorizeRequest(ctx, p);
  if (checked.kind === 'page') return sendErrorPage(res, checked.status, checked.message);
  if (checked.kind === 'redirect') return res.redirect(303, checked.url);
  const session = await currentSession(ctx.db, req, ctx.now());
  if (!session) return res.redirect(303, `/sign-in?return_to=${encodeURIComponent(req.originalUrl)}`);
  const csrf = ctx.csrf.token(req, res, 'consent', session.sessionId);
  const redirect = new URL(checked.redirectUri);
  const who =
    checked.client.kind === 'metadata_document'
      ? html` (published at <code>${new URL(checked.client.clientId).host}</code>)`
      : html``;
  sendPage(
    res,
    200,
    'Allow access',
    html`<h1>Allow <strong>${checked.client.name}</strong> to use Deploy MCP as you?</h1>
<p><strong>${checked.client.name}</strong>${who} will be sent back to <code>${redirect.host}</code>.</p>
<p>It gets to use every Deploy MCP tool as <strong>${session.email}</strong>: create, deploy, change and delete your services, repos and databases, and read their logs. Access lasts until you disconnect it on <a href="/account/clients">Connected apps</a>.</p>
<form method="post" action="/authorize">${hidden(p)}<input type="hidden" name="csrf" value="${csrf}">
<button type="submit" name="decision" value="allow">Allow</button><button type="submit" name="decision" value="deny" class="secondary">Deny</button></form>
<p class="muted">Signed in as ${session.email}.</p>`,
    { formTargets: [redirect.origin] },
  );
}

/** POST /authorize: the consent decision. Everything is checked again; the CSRF token ties it to this browser and session. */
export async function authorizePost(ctx: AuthContext, req: Request, res: Response) {
  const p = authorizeParams(req.body);
  const session = await currentSession(ctx.db, req, ctx.now());
  if (!session)
    return sendErrorPage(
      res,
      401,
      'You are not signed in (or your session ended). Start again from the app.',
    );
  if (!ctx.csrf.check(req, param(req.body, 'csrf'), 'consent', session.sessionId))
    return sendErrorPage(
      res,
      403,
      'This form expired or did not come from this site. Start again from the app.',
    );
  const checked = await checkAuthorizeRequest(ctx, p);
  if (checked.kind === 'page') return sendErrorPage(res, checked.status, checked.message);
  if (checked.kind === 'redirect') return res.redirect(303, checked.url);
  if (param(req.body, 'decision') !== 'allow')
    return res.redirect(
      303,
      responseUrl(
        ctx,
        checked.redirectUri,
        { error: 'access_denied', error_description: 'the user denied access' },
        checked.state,
      ),
    );
  const code = await issueCode(
    ctx.db,
    {
      userId: session.userId,
      clientRowId: checked.client.id,
      redirectUri: checked.redirectUri,
      codeChallenge: checked.codeChallenge,
      scope: checked.scope,
      resource: checked.resource,
    },
    ctx.now(),
  );
  await ctx.db.auditEvent.create({
    data: {
      userId: session.userId,
      actor: 'user',
      action: 'oauth.consent',
      targetType: 'oauth_client',
      targetId: checked.client.clientId.slice(0, 200),
    },
  });
  res.redirect(303, responseUrl(ctx, checked.redirectUri, { code }, checked.state));
}
