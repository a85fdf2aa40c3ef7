import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Db } from './db/client.ts';
import { firstRow } from './db/hot-reads.ts';
import { invalidInput, notFound } from './errors.ts';

/**
 * API keys: `dk_live_` + 32 base64url characters (192 random bits). The first 10 random
 * characters form the public prefix used to find the row; only a SHA-256 of the whole key is
 * stored, so a database dump yields no usable key. The secret part left after the prefix
 * still carries 132 bits, so a fast hash is safe (no bcrypt, no cache needed).
 */
export const API_KEY_PREFIX = 'dk_live_';
const RANDOM_CHARS = 32;
const PREFIX_LENGTH = API_KEY_PREFIX.length + 10;
const KEY_PATTERN = /^dk_live_[A-Za-z0-9_-]{32}$/;
/** last_used_at is written at most this often per key, so auth stays a single read. */
const LAST_USED_RESOLUTION_MS = 60_000;
/** Most keys one last_used_at write names. */
const LAST_USED_BATCH = 500;

export function generateApiKey(): { key: string; prefix: string; secretHash: string } {
  const key = API_KEY_PREFIX + randomBytes(24).toString('base64url');
  if (key.length !== API_KEY_PREFIX.length + RANDOM_CHARS) throw new Error('unexpected key length');
  return { key, prefix: key.slice(0, PREFIX_LENGTH), secretHash: hashKey(key) };
}

function hashKey(key: string): string {
  return hash('sha256', key, 'hex');
}

export type ApiKeySummary = {
  prefix: string;
  name: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
};

/** Creates a key for `userId`. The plaintext key is returned once and never stored. */
export async function createApiKey(db: Db, userId: string, name: string) {
  if (!/^[\w .@-]{1,64}$/.test(name)) {
    throw invalidInput('key name: 1-64 characters of letters, digits, spaces and . _ @ -');
  }
  for (let attempt = 0; ; attempt++) {
    const { key, prefix, secretHash } = generateApiKey();
    try {
      await db.apiKey.create({ data: { userId, name, prefix, secretHash } });
      return { key, prefix };
    } catch (err) {
      // A prefix collision (60 random bits) is astronomically rare; retry once.
      if ((err as { code?: string }).code !== 'P2002' || attempt > 0) throw err;
    }
  }
}

export async function listApiKeys(db: Db, userId: string): Promise<ApiKeySummary[]> {
  return db.apiKey.findMany({
    where: { userId },
    orderBy: { createdAt: 'asc' },
    select: { prefix: true, name: true, createdAt: true, lastUsedAt: true, revokedAt: true },
  });
}

/** Revokes the key with `prefix`; revoking twice is not an error. */
export async function revokeApiKey(db: Db, prefix: string) {
  const key = await db.apiKey.findUnique({ where: { prefix } });
  if (!key) throw notFound(`API key ${prefix}`, 'List keys with: deploy-mcp keys list <email>');
  const revoked = key.revokedAt
    ? key
    : await db.apiKey.update({ where: { id: key.id }, data: { revokedAt: new Date() } });
  return revoked;
}

/** Who a verified key belongs to. */
export type Caller = { userId: string; email: string; keyId: string; keyPrefix: string; keyName: string };

type KeyRow = {
  id: string;
  name: string;
  prefix: string;
  secretHash: string;
  /** A Date on PostgreSQL; on SQLite the ISO 8601 text Prisma stores (see expiryMs). */
  expiresAt: Date | string | number | bigint | null;
  userId: string;
  email: string;
};

const KEY_LOOKUP = `
  SELECT k."id", k."name", k."prefix", k."secretHash", k."expiresAt", u."id" AS "userId", u."email"
  FROM "ApiKey" k JOIN "User" u ON u."id" = k."userId"
  WHERE k."prefix" = ? AND k."revokedAt" IS NULL AND u."disabledAt" IS NULL
  LIMIT 1`;
const NO_HASH = '0'.repeat(64);

/** Verifies bearer keys: one indexed read, a hash and a constant-time comparison. */
export class ApiKeyAuthenticator {
  private readonly lastUsedWrites = new Map<string, number>();
  /** Keys whose last_used_at is still to be written, and whether a write is under way. */
  private readonly usedSinceWrite = new Set<string>();
  private writing = false;

  private readonly db: Db;
  private readonly onError: (err: unknown) => void;
  /** The clock last_used_at is written with (ms since the epoch); tests move it. */
  private readonly now: () => number;

  constructor(db: Db, onError: (err: unknown) => void = () => undefined, now: () => number = Date.now) {
    this.db = db;
    this.onError = onError;
    this.now = now;
  }

  async authenticate(presented: string): Promise<Caller | undefined> {
    if (!KEY_PATTERN.test(presented)) return undefined;
    // One statement (the key with its user), prepared once and run through the driver
    // (core/db/hot-reads.ts), not Prisma's two: auth runs on every request. A revoked key or a
    // disabled user matches no row (read anew each time: nothing is cached).
    const row = await firstRow<KeyRow>(this.db, KEY_LOOKUP, [presented.slice(0, PREFIX_LENGTH)]);
    // Hash and compare even when no row matched, so timing does not reveal valid prefixes.
    const expected = Buffer.from(row?.secretHash ?? NO_HASH, 'hex');
    const matches = timingSafeEqual(hash('sha256', presented, 'buffer'), expected);
    const now = this.now();
    if (!row || !matches) return undefined;
    if (row.expiresAt !== null && expiryMs(row.expiresAt) <= now) return undefined;
    this.touch(row.id, now);
    return {
      userId: row.userId,
      email: row.email,
      keyId: row.id,
      keyPrefix: row.prefix,
      keyName: row.name,
    };
  }

  private touch(keyId: string, now: number) {
    const last = this.lastUsedWrites.get(keyId) ?? 0;
    if (now - last < LAST_USED_RESOLUTION_MS) return;
    this.lastUsedWrites.set(keyId, now);
    if (this.lastUsedWrites.size > 10_000) this.lastUsedWrites.clear();
    this.usedSinceWrite.add(keyId);
    if (!this.writing) void this.writeLastUsed();
  }

  /**
   * Writes last_used_at for the keys used since the last write: at once when no write is under
   * way, else in one statement right after it, so a burst of keys (every client's first request
   * of a minute) costs a couple of writes (each a commit on the request path), not one per key.
   */
  private async writeLastUsed() {
    this.writing = true;
    try {
      for (let pass = 0; this.usedSinceWrite.size > 0 && pass < 100; pass++) {
        const ids = [...this.usedSinceWrite].slice(0, LAST_USED_BATCH);
        for (const id of ids) this.usedSinceWrite.delete(id);
        // updateMany: a plain UPDATE (no RETURNING), and a key deleted meanwhile is no error.
        await this.db.apiKey
          .updateMany({ where: { id: { in: ids } }, data: { lastUsedAt: new Date(this.now()) } })
          .catch(this.onError);
      }
    } finally {
      this.writing = false;
    }
  }
}

/** An expiry as read through the driver, in ms since the epoch; unreadable counts as expired. */
function expiryMs(value: Date | string | number | bigint): number {
  const ms =
    value instanceof Date ? value.getTime() : typeof value === 'string' ? Date.parse(value) : Number(value);
  return Number.isNaN(ms) ? Number.NEGATIVE_INFINITY : ms;
}

/** The audit actor of a caller: `api_key:<prefix>`, or `oauth:<client_id>` for OAuth access tokens. */
export function callerActor(caller: Caller): string {
  return caller.keyPrefix.startsWith('oauth:') ? caller.keyPrefix : `api_key:${caller.keyPrefix}`;
}
