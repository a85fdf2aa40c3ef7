import express, { type NextFunction, type Request, type Response } from 'express';
import type { Db } from '../../core/db/client.ts';
import type { Logger } from '../../core/log.ts';
import { OAuthTokenAuthenticator } from './access-tokens.ts';
import { accountRoutes } from './account-pages.ts';
import { authorizeGet, authorizePost } from './authorize.ts';
import type { MetadataFetchOptions } from './client-metadata-fetch.ts';
import {
  ClientError,
  DEFAULT_REGISTRATION_LIMITS,
  type RegistrationLimits,
  registerClient,
} from './clients.ts';
import type { AuthContext } from './context.ts';
import { authorizationServerMetadata, protectedResourceMetadata } from './metadata.ts';
import { Csrf } from './sessions.ts';
import { loginCodeMethod, type SignInMethod, signInRoutes } from './sign-in.ts';
import { revocationEndpoint, tokenEndpoint } from './token-endpoint.ts';

/** Options of the authorization server beyond what the app has (tests inject clocks and fetchers). */
export type AuthServerOptions = {
  /** The clock codes, tokens and sessions are timed by. */
  now?: () => Date;
  /** How Client ID Metadata Documents are fetched (tests point it at loopback). */
  metadataFetch?: MetadataFetchOptions;
  registrationLimits?: RegistrationLimits;
  /** Sign-in methods besides the login code (Firebase, GitHub). */
  signInMethods?: SignInMethod[];
};

export type AuthServerDeps = AuthServerOptions & {
  db: Db;
  log: Logger;
  publicUrl: string;
  /** Key of the CSRF tokens' HMAC. */
  csrfKey: string;
};

/** Machine endpoints may be called from browser apps (no cookies are involved there). */
function openCors(req: Request, res: Response, next: NextFunction) {
  res.set({
    'access-control-allow-origin': '*',
    'access-control-allow-methods': 'GET, POST, OPTIONS',
    'access-control-allow-headers': 'content-type, authorization, mcp-protocol-version',
  });
  if (req.method === 'OPTIONS') {
    res.status(204).end();
    return;
  }
  next();
}

const wrap =
  (fn: (ctx: AuthContext, req: Request, res: Response) => Promise<unknown>, ctx: AuthContext) =>
  (req: Request, res: Response, next: NextFunction) => {
    fn(ctx, req, res).catch(next);
  };

/** The MCP authorization server: metadata, registration, /authorize, /token, /revoke, sign-in and account pages. */
export function createAuthServer(deps: AuthServerDeps) {
  const now = deps.now ?? (() => new Date());
  const issuer = deps.publicUrl.replace(/\/+$/, '');
  const ctx: AuthContext = {
    db: deps.db,
    log: deps.log,
    issuer,
    resource: `${issuer}/mcp`,
    now,
    csrf: new Csrf(deps.csrfKey, now),
    metadataFetch: deps.metadataFetch,
    registrationLimits: deps.registrationLimits ?? DEFAULT_REGISTRATION_LIMITS,
    signInMethods: [loginCodeMethod, ...(deps.signInMethods ?? [])],
  };
  const router = express.Router();
  const form = express.urlencoded({ extended: false, limit: '16kb' });
  const json = express.json({ limit: '16kb' });

  const prm = (_req: Request, res: Response) => {
    res.set('cache-control', 'public, max-age=300').json(protectedResourceMetadata(ctx));
  };
  router.use(
    [
      '/.well-known/oauth-protected-resource',
      '/.well-known/oauth-authorization-server',
      '/register',
      '/token',
      '/revoke',
    ],
    openCors,
  );
  router.get('/.well-known/oauth-protected-resource', prm);
  router.get('/.well-known/oauth-protected-resource/mcp', prm);
  router.get('/.well-known/oauth-authorization-server', (_req, res) => {
    res.set('cache-control', 'public, max-age=300').json(authorizationServerMetadata(ctx));
  });

  router.post('/register', json, async (req, res, next) => {
    res.set({ 'cache-control': 'no-store', pragma: 'no-cache' });
    try {
      const client = await registerClient(
        ctx.db,
        req.body,
        req.socket.remoteAddress ?? 'unknown',
        now(),
        ctx.registrationLimits,
      );
      res.status(201).json(client);
    } catch (err) {
      if (err instanceof ClientError) {
        if (err.status === 429) res.set('retry-after', '3600');
        res.status(err.status).json({ error: err.error, error_description: err.message });
        return;
      }
      next(err);
    }
  });

  router.get('/authorize', wrap(authorizeGet, ctx));
  router.post('/authorize', form, wrap(authorizePost, ctx));
  router.post('/token', form, json, wrap(tokenEndpoint, ctx));
  router.post('/revoke', form, json, wrap(revocationEndpoint, ctx));
  router.use(signInRoutes(ctx));
  router.use(accountRoutes(ctx));

  return {
    router,
    accessTokens: new OAuthTokenAuthenticator(deps.db, ctx.resource, now),
    resource: ctx.resource,
    issuer,
  };
}
