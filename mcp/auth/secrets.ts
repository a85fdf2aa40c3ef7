import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** Prefixes of the opaque secrets the authorization server issues (they say what a leak is). */
export const ACCESS_TOKEN_PREFIX = 'dmo_at_';
export const REFRESH_TOKEN_PREFIX = 'dmo_rt_';
export const CODE_PREFIX = 'dmo_ac_';
export const SESSION_PREFIX = 'dmo_ss_';
export const CLIENT_ID_PREFIX = 'dmc_';

/** A fresh opaque secret: `prefix` + 256 random bits, base64url. */
export function newSecret(prefix: string): string {
  return prefix + randomBytes(32).toString('base64url');
}

/** What the database keeps of a secret: SHA-256, hex (256 random bits need no slow hash). */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** Constant-time equality of two strings (different lengths compare false, still hashing both). */
export function safeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb) && a.length === b.length;
}

/** PKCE S256: base64url(SHA-256(verifier)). */
export function s256(verifier: string): string {
  return createHash('sha256').update(verifier).digest('base64url');
}

/** HMAC-SHA256, base64url. */
export function mac(key: string, data: string): string {
  return createHmac('sha256', key).update(data).digest('base64url');
}
