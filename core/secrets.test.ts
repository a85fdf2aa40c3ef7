import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadMasterKey, SecretBox } from './secrets.ts';

describe('SecretBox', () => {
  const box = new SecretBox(Buffer.alloc(32, 7));

  it('round-trips, and the envelope does not contain the plaintext', () => {
    const sealed = box.sealJson({ DATABASE_URL: 'libsql://secret-host' }, 'service:1');
    expect(sealed).not.toContain('secret-host');
    expect(box.openJson(sealed, 'service:1')).toEqual({ DATABASE_URL: 'libsql://secret-host' });
  });

  it('refuses a ciphertext moved to another row, tampered with, or opened with another key', () => {
    const sealed = box.seal('s3cret', 'service:1');
    expect(() => box.open(sealed, 'service:2')).toThrow();
    const parts = sealed.split('.');
    parts[3] = Buffer.from('x').toString('base64url');
    expect(() => box.open(parts.join('.'), 'service:1')).toThrow();
    expect(() => new SecretBox(Buffer.alloc(32, 8)).open(sealed, 'service:1')).toThrow();
  });

  it('creates the embedded master key once, private to its owner', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'key-'));
    const first = loadMasterKey(dir, undefined);
    expect(loadMasterKey(dir, undefined).equals(first)).toBe(true);
    expect(fs.statSync(path.join(dir, 'secret.key')).mode & 0o777).toBe(0o600);
    fs.rmSync(dir, { recursive: true });
  });

  it('creates a missing data dir 0700, and makes a key file readable by others private', () => {
    const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'key-'));
    const dataDir = path.join(parent, 'data');
    loadMasterKey(dataDir, undefined);
    expect(fs.statSync(dataDir).mode & 0o777).toBe(0o700);
    const file = path.join(dataDir, 'secret.key');
    fs.chmodSync(file, 0o644);
    loadMasterKey(dataDir, undefined);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    fs.rmSync(parent, { recursive: true });
  });
});
