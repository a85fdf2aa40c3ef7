import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { validWebhookSignature } from './signature.ts';

describe('webhook signatures (X-Hub-Signature-256)', () => {
  // GitHub's documented test vector (security checklist E29).
  const secret = "It's a Secret to Everybody";
  const body = Buffer.from('Hello, World!');
  const good = 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17';

  it("accepts GitHub's test vector", () => {
    expect(validWebhookSignature(secret, body, good)).toBe(true);
  });

  it('refuses a changed body, another secret, a missing or malformed header, and no secret', () => {
    expect(validWebhookSignature(secret, Buffer.from('Hello, World?'), good)).toBe(false);
    expect(validWebhookSignature('another secret entirely', body, good)).toBe(false);
    expect(validWebhookSignature(secret, body, undefined)).toBe(false);
    expect(validWebhookSignature(secret, body, good.replace('sha256=', 'sha1='))).toBe(false);
    expect(validWebhookSignature(secret, body, good.slice(0, -2))).toBe(false);
    expect(validWebhookSignature(undefined, body, good)).toBe(false);
    expect(validWebhookSignature('', body, good)).toBe(false);
  });

  it('is computed over the raw bytes, not a re-serialized payload', () => {
    const raw = Buffer.from('{"a":1,  "b":2}');
    const sig = `sha256=${createHmac('sha256', secret).update(raw).digest('hex')}`;
    expect(validWebhookSignature(secret, raw, sig)).toBe(true);
    expect(validWebhookSignature(secret, Buffer.from(JSON.stringify(JSON.parse(raw.toString()))), sig)).toBe(
      false,
    );
  });
});
