import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Db } from '../core/db/client.ts';

/**
 * Git tokens: `mlg_` + 32 base64url characters (192 random bits), sent as the HTTP Basic
 * password. Each is scoped to one repo and to pull or pull+push, and expires. Like API keys,
 * only a SHA-256 is stored, found through a 10-character public prefix.
 */
export const GIT_TOKEN_PREFIX = 'mlg_';
const PREFIX_LENGTH = GIT_TOKEN_PREFIX.length + 10;
const TOKEN_PATTERN = /^mlg_[A-Za-z0-9_-]{32}$/;
/** Live tokens kept per repo; issuing more revokes the oldest. */
export const MAX_LIVE_TOKENS_PER_REPO = 50;

export type GitScope = 'pull' | 'pull,push';

function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** Issues a token for `repoId`; the plaintext is returned once. */
export async function issueGitToken(
  db: Db,
  o: { repoId: string; userId: string; scope: GitScope; ttlSeconds: number; now?: Date },
) {
  const token = GIT_TOKEN_PREFIX + randomBytes(24).toString('base64url');
  const expiresAt = new Date((o.now ?? new Date()).getTime() + o.ttlSeconds * 1000);
  await db.gitToken.create({
    data: {
      repoId: o.repoId,
      userId: o.userId,
      prefix: token.slice(0, PREFIX_LENGTH),
      secretHash: hashToken(token),
      scope: o.scope,
      expiresAt,
    },
  });
  const live = await db.gitToken.findMany({
    where: { repoId: o.repoId, revokedAt: null, expiresAt: { gt: new Date() } },
    orderBy: { createdAt: 'desc' },
    skip: MAX_LIVE_TOKENS_PER_REPO,
    select: { id: true },
  });
  if (live.length) {
    await db.gitToken.updateMany({
      where: { id: { in: live.map((t) => t.id) } },
      data: { revokedAt: new Date() },
    });
  }
  return { token, expiresAt };
}

/** True when `token` is a live token for `repoId` that allows `need`. Constant-time compare. */
export async function verifyGitToken(
  db: Db,
  token: string,
  repoId: string,
  need: 'pull' | 'push',
): Promise<boolean> {
  if (!TOKEN_PATTERN.test(token)) return false;
  const row = await db.gitToken.findUnique({ where: { prefix: token.slice(0, PREFIX_LENGTH) } });
  const expected = Buffer.from(row?.secretHash ?? '0'.repeat(64), 'hex');
  const matches = timingSafeEqual(Buffer.from(hashToken(token), 'hex'), expected);
  if (!row || !matches || row.revokedAt || row.expiresAt.getTime() <= Date.now()) return false;
  if (row.repoId !== repoId || !row.scope.split(',').includes(need)) return false;
  return true;
}

/** Revokes one token by its prefix; returns false when there is none. */
export async function revokeGitToken(db: Db, prefix: string): Promise<boolean> {
  const { count } = await db.gitToken.updateMany({
    where: { prefix, revokedAt: null },
    data: { revokedAt: new Date() },
  });
  return count > 0;
}

/** Deletes tokens that expired more than a day ago (bounded table growth). */
export async function pruneExpiredGitTokens(db: Db, now = new Date()): Promise<number> {
  const { count } = await db.gitToken.deleteMany({
    where: { expiresAt: { lt: new Date(now.getTime() - 86_400_000) } },
  });
  return count;
}
