import type { Db } from '../../core/db/client.ts';
import {
  ACCESS_TOKEN_PREFIX,
  CODE_PREFIX,
  hashSecret,
  newSecret,
  REFRESH_TOKEN_PREFIX,
  s256,
  safeEqual,
} from './secrets.ts';

export const CODE_TTL_MS = 10 * 60 * 1000;
export const ACCESS_TOKEN_TTL_MS = 60 * 60 * 1000;
export const REFRESH_TOKEN_TTL_MS = 30 * 24 * 60 * 60 * 1000;
/** A grant ends this long after consent, however often its tokens are refreshed. */
export const GRANT_TTL_MS = 90 * 24 * 60 * 60 * 1000;

/** A token endpoint failure (RFC 6749 §5.2). */
export class GrantError extends Error {
  readonly error: 'invalid_grant' | 'invalid_request' | 'invalid_target' | 'invalid_client';

  constructor(
    error: 'invalid_grant' | 'invalid_request' | 'invalid_target' | 'invalid_client',
    message: string,
  ) {
    super(message);
    this.error = error;
  }
}

export type TokenResponse = {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  refresh_token: string;
  scope: string;
};

/** Consent given: a new grant and its authorization code (returned once; stored hashed). */
export async function issueCode(
  db: Db,
  input: {
    userId: string;
    clientRowId: string;
    redirectUri: string;
    codeChallenge: string;
    scope: string;
    resource: string;
  },
  now: Date,
): Promise<string> {
  const code = newSecret(CODE_PREFIX);
  await db.oAuthGrant.create({
    data: {
      userId: input.userId,
      clientId: input.clientRowId,
      scope: input.scope,
      resource: input.resource,
      createdAt: now,
      expiresAt: new Date(now.getTime() + GRANT_TTL_MS),
      codes: {
        create: {
          codeHash: hashSecret(code),
          clientId: input.clientRowId,
          userId: input.userId,
          redirectUri: input.redirectUri,
          codeChallenge: input.codeChallenge,
          codeChallengeMethod: 'S256',
          scope: input.scope,
          resource: input.resource,
          createdAt: now,
          expiresAt: new Date(now.getTime() + CODE_TTL_MS),
        },
      },
    },
  });
  return code;
}

/** Ends a grant and every code and token it issued. */
export async function revokeGrant(db: Db, grantId: string, reason: string, now: Date) {
  await db.$transaction([
    db.oAuthGrant.updateMany({
      where: { id: grantId, revokedAt: null },
      data: { revokedAt: now, revokedReason: reason },
    }),
    db.oAuthToken.updateMany({ where: { grantId, revokedAt: null }, data: { revokedAt: now } }),
    db.oAuthCode.updateMany({ where: { grantId, usedAt: null }, data: { usedAt: now } }),
  ]);
}

async function issueTokens(
  db: Db,
  grant: { id: string; clientId: string; userId: string; scope: string; resource: string; expiresAt: Date },
  now: Date,
): Promise<TokenResponse> {
  const access = newSecret(ACCESS_TOKEN_PREFIX);
  const refresh = newSecret(REFRESH_TOKEN_PREFIX);
  const common = {
    grantId: grant.id,
    clientId: grant.clientId,
    userId: grant.userId,
    scope: grant.scope,
    resource: grant.resource,
    createdAt: now,
  };
  const refreshExpiry = Math.min(now.getTime() + REFRESH_TOKEN_TTL_MS, grant.expiresAt.getTime());
  await db.oAuthToken.createMany({
    data: [
      {
        ...common,
        tokenHash: hashSecret(access),
        kind: 'access',
        expiresAt: new Date(now.getTime() + ACCESS_TOKEN_TTL_MS),
      },
      { ...common, tokenHash: hashSecret(refresh), kind: 'refresh', expiresAt: new Date(refreshExpiry) },
    ],
  });
  return {
    access_token: access,
    token_type: 'Bearer',
    expires_in: ACCESS_TOKEN_TTL_MS / 1000,
    refresh_token: refresh,
    scope: grant.scope,
  };
}

/**
 * authorization_code grant: the code is claimed atomically (a second use finds it used and
 * revokes the grant, with every token the first use issued), then client, redirect URI, PKCE
 * verifier and resource are checked.
 */
export async function redeemCode(
  db: Db,
  input: {
    code: string;
    clientId: string;
    redirectUri: string | undefined;
    codeVerifier: string | undefined;
    resource: string | undefined;
  },
  now: Date,
): Promise<TokenResponse> {
  if (!input.codeVerifier) throw new GrantError('invalid_request', 'code_verifier is required (PKCE)');
  if (!/^[A-Za-z0-9._~-]{43,128}$/.test(input.codeVerifier))
    throw new GrantError('invalid_grant', 'code_verifier must be 43-128 characters of [A-Za-z0-9._~-]');
  const row = await db.oAuthCode.findUnique({
    where: { codeHash: hashSecret(input.code) },
    include: { client: { select: { clientId: true } }, grant: true },
  });
  if (!row) throw new GrantError('invalid_grant', 'unknown authorization code');
  const claimed = await db.oAuthCode.updateMany({
    where: { id: row.id, usedAt: null },
    data: { usedAt: now },
  });
  if (claimed.count !== 1) {
    await revokeGrant(db, row.grantId, 'code_reuse', now);
    throw new GrantError(
      'invalid_grant',
      'authorization code already used; the tokens it issued are revoked',
    );
  }
  if (row.expiresAt <= now) throw new GrantError('invalid_grant', 'authorization code expired');
  if (row.grant.revokedAt) throw new GrantError('invalid_grant', 'the grant was revoked');
  if (!safeEqual(row.client.clientId, input.clientId))
    throw new GrantError('invalid_grant', 'the code was issued to another client');
  if (input.redirectUri === undefined || input.redirectUri !== row.redirectUri)
    throw new GrantError('invalid_grant', 'redirect_uri differs from the one in the authorization request');
  if (!safeEqual(s256(input.codeVerifier), row.codeChallenge))
    throw new GrantError('invalid_grant', 'code_verifier does not match the code_challenge');
  if (input.resource !== undefined && input.resource !== row.resource)
    throw new GrantError('invalid_target', 'resource differs from the one authorized');
  return issueTokens(db, row.grant, now);
}

/** refresh_token grant: rotation; a used refresh token presented again revokes the grant. */
export async function refreshTokens(
  db: Db,
  input: { refreshToken: string; clientId: string; resource: string | undefined },
  now: Date,
): Promise<TokenResponse> {
  const row = await db.oAuthToken.findUnique({
    where: { tokenHash: hashSecret(input.refreshToken) },
    include: { client: { select: { clientId: true } }, grant: true },
  });
  if (row?.kind !== 'refresh') throw new GrantError('invalid_grant', 'unknown refresh token');
  if (!safeEqual(row.client.clientId, input.clientId))
    throw new GrantError('invalid_grant', 'the refresh token was issued to another client');
  const claimed = await db.oAuthToken.updateMany({
    where: { id: row.id, usedAt: null },
    data: { usedAt: now },
  });
  if (claimed.count !== 1) {
    await revokeGrant(db, row.grantId, 'refresh_reuse', now);
    throw new GrantError('invalid_grant', 'refresh token already used; the grant is revoked');
  }
  if (row.revokedAt || row.grant.revokedAt) throw new GrantError('invalid_grant', 'the grant was revoked');
  if (row.expiresAt <= now || row.grant.expiresAt <= now)
    throw new GrantError('invalid_grant', 'refresh token expired');
  if (input.resource !== undefined && input.resource !== row.resource)
    throw new GrantError('invalid_target', 'resource differs from the one authorized');
  // The old pair ends with the rotation: its access token too.
  await db.oAuthToken.updateMany({
    where: { grantId: row.grantId, kind: 'access', revokedAt: null, createdAt: { lte: row.createdAt } },
    data: { revokedAt: now },
  });
  return issueTokens(db, row.grant, now);
}

/** RFC 7009: revokes a token of `clientId`; unknown tokens are not an error. Revoking a refresh token ends the grant. */
export async function revokeToken(db: Db, token: string, clientId: string | undefined, now: Date) {
  const row = await db.oAuthToken.findUnique({
    where: { tokenHash: hashSecret(token) },
    include: { client: { select: { clientId: true } } },
  });
  if (!row) return;
  if (clientId !== undefined && !safeEqual(row.client.clientId, clientId)) return;
  if (row.kind === 'refresh') await revokeGrant(db, row.grantId, 'revoked', now);
  else await db.oAuthToken.updateMany({ where: { id: row.id, revokedAt: null }, data: { revokedAt: now } });
}

/** The apps a user connected (live grants), one row per client. */
export async function listConnectedClients(db: Db, userId: string, now: Date) {
  const grants = await db.oAuthGrant.findMany({
    where: { userId, revokedAt: null, expiresAt: { gt: now } },
    orderBy: { createdAt: 'asc' },
    select: {
      createdAt: true,
      scope: true,
      client: { select: { clientId: true, name: true, redirectUris: true } },
    },
  });
  const byClient = new Map<
    string,
    { clientId: string; name: string; redirectHosts: string[]; since: Date; scope: string }
  >();
  for (const g of grants) {
    if (byClient.has(g.client.clientId)) continue;
    const hosts = (JSON.parse(g.client.redirectUris) as string[]).map((u) => {
      try {
        return new URL(u).host;
      } catch {
        return '?';
      }
    });
    byClient.set(g.client.clientId, {
      clientId: g.client.clientId,
      name: g.client.name,
      redirectHosts: [...new Set(hosts)],
      since: g.createdAt,
      scope: g.scope,
    });
  }
  return [...byClient.values()];
}

/** Disconnects a client from a user: every grant, and so every token, ends now. */
export async function disconnectClient(db: Db, userId: string, clientId: string, now: Date): Promise<number> {
  const grants = await db.oAuthGrant.findMany({
    where: { userId, revokedAt: null, client: { clientId } },
    select: { id: true },
  });
  for (const g of grants) await revokeGrant(db, g.id, 'disconnected', now);
  return grants.length;
}
