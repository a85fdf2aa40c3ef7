import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { Db } from '../../core/db/client.ts';
import {
  fetchClientMetadata,
  MetadataFetchError,
  type MetadataFetchOptions,
} from './client-metadata-fetch.ts';
import { CLIENT_ID_PREFIX } from './secrets.ts';

/** A client as the authorization server knows it. */
export type OAuthClientRecord = {
  id: string;
  clientId: string;
  name: string;
  redirectUris: string[];
  kind: string;
};

/** Bounds of dynamic registration (RFC 7591). */
export type RegistrationLimits = {
  /** Registrations one address may make per hour. */
  perAddressPerHour: number;
  /** Registrations from everyone per hour. */
  perHour: number;
};
export const DEFAULT_REGISTRATION_LIMITS: RegistrationLimits = { perAddressPerHour: 20, perHour: 500 };

/** How long a fetched metadata document is trusted before it is fetched again. */
const METADATA_TTL_MS = 60 * 60 * 1000;

export class ClientError extends Error {
  readonly error: string;
  readonly status: number;

  constructor(error: string, message: string, status: number = 400) {
    super(message);
    this.error = error;
    this.status = status;
  }
}

/** A display name without control characters. */
function printable(name: string): string {
  return [...name]
    .filter((c) => c.charCodeAt(0) >= 0x20 && c.charCodeAt(0) !== 0x7f)
    .join('')
    .trim();
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/** A redirect URI a client may register: https, or http on a loopback host; no fragment. */
export function checkRedirectUri(uri: string): string | undefined {
  if (uri.length > 2000) return 'a redirect URI is longer than 2000 characters';
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return `not a URL: ${uri.slice(0, 100)}`;
  }
  if (url.hash || uri.includes('#')) return 'a redirect URI must not have a fragment';
  if (url.username || url.password) return 'a redirect URI must not carry credentials';
  if (url.protocol === 'https:') return undefined;
  if (url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname)) return undefined;
  return `redirect URIs must use https, or http on localhost/127.0.0.1/[::1]: ${uri.slice(0, 100)}`;
}

/**
 * Exact match, except that a loopback redirect's port may vary (RFC 8252 §7.3): scheme, host
 * (localhost and 127.0.0.1 differ), path and query must be identical.
 */
export function redirectUriMatches(registered: string, presented: string): boolean {
  if (registered === presented) return true;
  let a: URL;
  let b: URL;
  try {
    a = new URL(registered);
    b = new URL(presented);
  } catch {
    return false;
  }
  if (a.protocol !== 'http:' || !LOOPBACK_HOSTS.has(a.hostname)) return false;
  const withoutPort = (u: URL) => `${u.protocol}//${u.hostname}${u.pathname}${u.search}`;
  return (
    b.protocol === 'http:' &&
    !b.username &&
    !b.password &&
    !presented.includes('#') &&
    withoutPort(a) === withoutPort(b)
  );
}

const registrationSchema = z.object({
  redirect_uris: z.array(z.string()).min(1).max(10),
  client_name: z.string().max(200).optional(),
  token_endpoint_auth_method: z.string().max(100).optional(),
  grant_types: z.array(z.string().max(100)).max(10).optional(),
  response_types: z.array(z.string().max(100)).max(10).optional(),
  scope: z.string().max(1000).optional(),
});

const GRANT_TYPES = ['authorization_code', 'refresh_token'];

/** Dynamic client registration (RFC 7591): public clients only (PKCE; no secret issued). */
export async function registerClient(
  db: Db,
  body: unknown,
  address: string,
  now: Date,
  limits: RegistrationLimits = DEFAULT_REGISTRATION_LIMITS,
) {
  const parsed = registrationSchema.safeParse(body);
  if (!parsed.success)
    throw new ClientError(
      'invalid_client_metadata',
      `invalid registration: ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`,
    );
  const meta = parsed.data;
  for (const uri of meta.redirect_uris) {
    const problem = checkRedirectUri(uri);
    if (problem) throw new ClientError('invalid_redirect_uri', problem);
  }
  if (meta.grant_types?.some((g) => !GRANT_TYPES.includes(g)))
    throw new ClientError(
      'invalid_client_metadata',
      'grant_types: only authorization_code and refresh_token',
    );
  if (meta.response_types?.some((r) => r !== 'code'))
    throw new ClientError('invalid_client_metadata', 'response_types: only code');
  const hourAgo = new Date(now.getTime() - 60 * 60 * 1000);
  const [fromAddress, total] = await Promise.all([
    db.oAuthClient.count({ where: { registeredFrom: address, createdAt: { gt: hourAgo } } }),
    db.oAuthClient.count({ where: { kind: 'dynamic', createdAt: { gt: hourAgo } } }),
  ]);
  if (fromAddress >= limits.perAddressPerHour || total >= limits.perHour)
    throw new ClientError('too_many_registrations', 'too many client registrations; try again later', 429);
  const clientId = CLIENT_ID_PREFIX + randomBytes(16).toString('base64url');
  const name = printable(meta.client_name ?? '') || 'Unnamed client';
  const row = await db.oAuthClient.create({
    data: {
      clientId,
      name,
      redirectUris: JSON.stringify(meta.redirect_uris),
      kind: 'dynamic',
      registeredFrom: address,
      createdAt: now,
    },
  });
  return {
    client_id: clientId,
    client_id_issued_at: Math.floor(row.createdAt.getTime() / 1000),
    client_name: name,
    redirect_uris: meta.redirect_uris,
    grant_types: GRANT_TYPES,
    response_types: ['code'],
    // Public client: the server replaces any requested method (RFC 7591 §3.2.1 allows it).
    token_endpoint_auth_method: 'none',
  };
}

function toRecord(row: {
  id: string;
  clientId: string;
  name: string;
  redirectUris: string;
  kind: string;
}): OAuthClientRecord {
  return {
    id: row.id,
    clientId: row.clientId,
    name: row.name,
    kind: row.kind,
    redirectUris: JSON.parse(row.redirectUris) as string[],
  };
}

/** A Client ID Metadata Document client_id: an https URL with a path. */
export function isMetadataDocumentClientId(clientId: string): boolean {
  if (!clientId.startsWith('https://')) return false;
  try {
    const url = new URL(clientId);
    return url.pathname !== '/' && url.pathname !== '' && !url.hash;
  } catch {
    return false;
  }
}

const metadataDocumentSchema = z.object({
  client_id: z.string(),
  client_name: z.string().max(200).optional(),
  redirect_uris: z.array(z.string()).min(1).max(10),
  token_endpoint_auth_method: z.string().optional(),
});

/** Finds a registered client, or fetches (and caches) the metadata document a URL client_id names. */
export async function findClient(
  db: Db,
  clientId: string,
  now: Date,
  fetchOptions?: MetadataFetchOptions,
): Promise<OAuthClientRecord | undefined> {
  if (clientId.length > 2000) return undefined;
  const row = await db.oAuthClient.findUnique({ where: { clientId } });
  if (!isMetadataDocumentClientId(clientId)) return row && row.kind === 'dynamic' ? toRecord(row) : undefined;
  if (row?.metadataExpiresAt && row.metadataExpiresAt > now) return toRecord(row);
  let doc: unknown;
  try {
    doc = await fetchClientMetadata(clientId, fetchOptions);
  } catch (err) {
    if (err instanceof MetadataFetchError)
      throw new ClientError('invalid_client', `client metadata document: ${err.message}`);
    throw err;
  }
  const parsed = metadataDocumentSchema.safeParse(doc);
  if (!parsed.success)
    throw new ClientError('invalid_client', 'client metadata document: not a valid client metadata document');
  const meta = parsed.data;
  if (meta.client_id !== clientId)
    throw new ClientError(
      'invalid_client',
      'client metadata document: its client_id is not the URL it was fetched from',
    );
  if (meta.token_endpoint_auth_method && meta.token_endpoint_auth_method !== 'none')
    throw new ClientError(
      'invalid_client',
      'client metadata document: only public clients (token_endpoint_auth_method "none")',
    );
  for (const uri of meta.redirect_uris) {
    const problem = checkRedirectUri(uri);
    if (problem) throw new ClientError('invalid_client', `client metadata document: ${problem}`);
  }
  const data = {
    name: printable(meta.client_name ?? '') || new URL(clientId).host,
    redirectUris: JSON.stringify(meta.redirect_uris),
    kind: 'metadata_document',
    metadataExpiresAt: new Date(now.getTime() + METADATA_TTL_MS),
  };
  const saved = await db.oAuthClient.upsert({
    where: { clientId },
    create: { clientId, ...data },
    update: data,
  });
  return toRecord(saved);
}

/** A client known to the server already (the token and revocation endpoints never fetch). */
export async function knownClient(db: Db, clientId: string): Promise<OAuthClientRecord | undefined> {
  if (clientId.length > 2000) return undefined;
  const row = await db.oAuthClient.findUnique({ where: { clientId } });
  return row ? toRecord(row) : undefined;
}
