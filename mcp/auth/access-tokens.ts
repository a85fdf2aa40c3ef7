import type { Caller } from '../../core/api-keys.ts';
import type { Db } from '../../core/db/client.ts';
import { ACCESS_TOKEN_PREFIX, hashSecret } from './secrets.ts';

/** The seam /mcp authenticates through: API keys, OAuth access tokens, or both. */
export type Authenticator = { authenticate(presented: string): Promise<Caller | undefined> };

const ACCESS_TOKEN_PATTERN = /^dmo_at_[A-Za-z0-9_-]{43}$/;

/**
 * Verifies OAuth access tokens: one indexed read by the token's hash (a 256-bit secret needs no
 * slow hash nor a separate comparison: finding the row is the comparison), no cache, so a
 * revoked grant or token is refused on its very next request.
 */
export class OAuthTokenAuthenticator implements Authenticator {
  private readonly db: Db;
  /** The resource tokens must be bound to (this server's /mcp URL). */
  private readonly resource: string;
  private readonly now: () => Date;

  constructor(db: Db, resource: string, now: () => Date = () => new Date()) {
    this.db = db;
    this.resource = resource;
    this.now = now;
  }

  async authenticate(presented: string): Promise<Caller | undefined> {
    if (!ACCESS_TOKEN_PATTERN.test(presented)) return undefined;
    const row = await this.db.oAuthToken.findUnique({
      where: { tokenHash: hashSecret(presented) },
      select: {
        id: true,
        kind: true,
        resource: true,
        expiresAt: true,
        revokedAt: true,
        grantId: true,
        client: { select: { clientId: true, name: true } },
        user: { select: { id: true, email: true, disabledAt: true } },
      },
    });
    if (row?.kind !== 'access' || row.revokedAt || row.user.disabledAt) return undefined;
    if (row.expiresAt.getTime() <= this.now().getTime()) return undefined;
    if (row.resource !== this.resource) return undefined;
    return {
      userId: row.user.id,
      email: row.user.email,
      keyId: row.grantId,
      keyPrefix: `oauth:${row.client.clientId}`.slice(0, 80),
      keyName: row.client.name,
    };
  }
}

/** Sends each bearer to the authenticator its prefix names (dk_live_ keys, dmo_at_ tokens). */
export class BearerAuthenticator implements Authenticator {
  private readonly apiKeys: Authenticator;
  private readonly accessTokens: Authenticator | undefined;

  constructor(apiKeys: Authenticator, accessTokens: Authenticator | undefined) {
    this.apiKeys = apiKeys;
    this.accessTokens = accessTokens;
  }

  authenticate(presented: string): Promise<Caller | undefined> {
    if (presented.startsWith(ACCESS_TOKEN_PREFIX))
      return this.accessTokens?.authenticate(presented) ?? Promise.resolve(undefined);
    return this.apiKeys.authenticate(presented);
  }
}
