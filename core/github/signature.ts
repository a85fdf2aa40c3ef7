import { createHmac, timingSafeEqual } from 'node:crypto';

const HEADER_PATTERN = /^sha256=([0-9a-f]{64})$/;

/**
 * True when `header` (X-Hub-Signature-256) is `sha256=` + the HMAC-SHA256 of the raw request
 * body under `secret`. Checked on the bytes as received, before any parsing, and compared in
 * constant time; a missing secret, header or malformed value is simply false.
 */
export function validWebhookSignature(
  secret: string | undefined,
  rawBody: Buffer,
  header: string | undefined,
): boolean {
  if (!secret || !header) return false;
  const given = HEADER_PATTERN.exec(header.trim().toLowerCase())?.[1];
  if (!given) return false;
  const expected = createHmac('sha256', secret).update(rawBody).digest();
  return timingSafeEqual(Buffer.from(given, 'hex'), expected);
}
