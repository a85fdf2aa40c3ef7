import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Encrypts secrets at rest (service env vars, resource connection strings) with AES-256-GCM.
 * Envelope: "v1.<iv>.<tag>.<ciphertext>", base64url parts; `aad` binds a ciphertext to its row
 * so it cannot be copied onto another one.
 */
export class SecretBox {
  private readonly key: Buffer;

  constructor(key: Buffer) {
    this.key = key;
    if (key.length !== 32) throw new Error('secret key must be 32 bytes');
  }

  seal(plaintext: string, aad: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(aad));
    const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return ['v1', iv, cipher.getAuthTag(), ct]
      .map((p) => (typeof p === 'string' ? p : p.toString('base64url')))
      .join('.');
  }

  open(envelope: string, aad: string): string {
    const [version, iv, tag, ct] = envelope.split('.');
    if (version !== 'v1' || !iv || !tag || ct === undefined) throw new Error('not a sealed secret');
    const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64url'));
    decipher.setAAD(Buffer.from(aad));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]).toString('utf8');
  }

  /** A stable secret for `purpose` derived from the master key (e.g. Pulumi's state passphrase). */
  derive(purpose: string): string {
    return createHmac('sha256', this.key).update(`deploy-mcp:${purpose}`).digest('base64url');
  }

  sealJson(value: unknown, aad: string): string {
    return this.seal(JSON.stringify(value), aad);
  }

  openJson<T>(envelope: string, aad: string): T {
    return JSON.parse(this.open(envelope, aad)) as T;
  }
}

/**
 * The master key: `configured` (base64, 32 bytes) when set, else `<dataDir>/secret.key`,
 * created on first use with mode 0600 (embedded default; a data dir it creates is 0700).
 */
export function loadMasterKey(dataDir: string, configured: string | undefined): Buffer {
  if (configured) {
    const key = Buffer.from(configured, 'base64');
    if (key.length !== 32) throw new Error('DEPLOY_MCP_SECRET_KEY must be 32 bytes, base64-encoded');
    return key;
  }
  const file = path.join(dataDir, 'secret.key');
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  try {
    fs.writeFileSync(file, randomBytes(32).toString('base64'), { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    fs.chmodSync(file, 0o600); // made by hand, or by an older version, readable by others
  }
  const key = Buffer.from(fs.readFileSync(file, 'utf8').trim(), 'base64');
  if (key.length !== 32) throw new Error(`${file} does not hold a 32-byte base64 key`);
  return key;
}
