import type { Request, Response } from 'express';
import { knownClient } from './clients.ts';
import type { AuthContext } from './context.ts';
import { GrantError, redeemCode, refreshTokens, revokeToken } from './grants.ts';

function field(req: Request, name: string): string | undefined {
  const v = (req.body as Record<string, unknown> | undefined)?.[name];
  return typeof v === 'string' ? v : undefined;
}

function noStore(res: Response) {
  res.set({ 'cache-control': 'no-store', pragma: 'no-cache' });
}

function tokenError(res: Response, status: number, error: string, description: string) {
  noStore(res);
  res.status(status).json({ error, error_description: description });
}

/** POST /token: authorization_code and refresh_token grants for public clients (PKCE). */
export async function tokenEndpoint(ctx: AuthContext, req: Request, res: Response) {
  const grantType = field(req, 'grant_type');
  const clientId = field(req, 'client_id');
  if (grantType !== 'authorization_code' && grantType !== 'refresh_token')
    return tokenError(
      res,
      400,
      'unsupported_grant_type',
      'grant_type must be authorization_code or refresh_token',
    );
  if (!clientId || !(await knownClient(ctx.db, clientId)))
    return tokenError(
      res,
      401,
      'invalid_client',
      'unknown client_id (public clients send client_id in the body)',
    );
  const resource = field(req, 'resource');
  if (resource !== undefined && resource !== ctx.resource)
    return tokenError(res, 400, 'invalid_target', `the only resource here is ${ctx.resource}`);
  try {
    const tokens =
      grantType === 'authorization_code'
        ? await redeemCode(
            ctx.db,
            {
              code: field(req, 'code') ?? '',
              clientId,
              redirectUri: field(req, 'redirect_uri'),
              codeVerifier: field(req, 'code_verifier'),
              resource,
            },
            ctx.now(),
          )
        : await refreshTokens(
            ctx.db,
            { refreshToken: field(req, 'refresh_token') ?? '', clientId, resource },
            ctx.now(),
          );
    noStore(res);
    res.status(200).json(tokens);
  } catch (err) {
    if (err instanceof GrantError)
      return tokenError(res, err.error === 'invalid_client' ? 401 : 400, err.error, err.message);
    throw err;
  }
}

/** POST /revoke (RFC 7009): 200 whether or not the token was known. */
export async function revocationEndpoint(ctx: AuthContext, req: Request, res: Response) {
  const token = field(req, 'token');
  if (!token) return tokenError(res, 400, 'invalid_request', 'token is required');
  await revokeToken(ctx.db, token, field(req, 'client_id'), ctx.now());
  noStore(res);
  res.status(200).end();
}
