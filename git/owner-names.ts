import type { Db } from '../core/db/client.ts';
import { isUniqueViolation } from '../core/db/unique-violation.ts';

/**
 * A user's owner name in git URLs (/<owner>/<repo>.git): readable, derived from the email's
 * local part, made unique with a numeric suffix, and stable once set.
 */
export async function ensureOwnerName(db: Db, userId: string): Promise<string> {
  const user = await db.user.findUniqueOrThrow({
    where: { id: userId },
    select: { email: true, ownerName: true },
  });
  if (user.ownerName) return user.ownerName;
  const base = ownerNameBase(user.email);
  for (let n = 1; n < 1000; n++) {
    const candidate = ownerNameCandidate(base, n);
    try {
      // Set only while unset: a concurrent request may have chosen one already.
      const { count } = await db.user.updateMany({
        where: { id: userId, ownerName: null },
        data: { ownerName: candidate },
      });
      if (count === 1) return candidate;
      const now = await db.user.findUniqueOrThrow({ where: { id: userId }, select: { ownerName: true } });
      if (now.ownerName) return now.ownerName;
    } catch (err) {
      if (!isUniqueViolation(err, 'ownerName')) throw err; // another user has it: next candidate
    }
  }
  throw new Error(`no free owner name for ${base}`);
}

/**
 * The longest owner name: a base of at most 42 characters ("u-" + 40) and a suffix up to "-999".
 * Host labels (core/app-hosts.ts) keep owner names this long whole.
 */
export const MAX_OWNER_NAME_LENGTH = 46;

/** The `n`th owner name tried for `base` (n from 1 to 999): the base itself, then "<base>-<n>". */
export function ownerNameCandidate(base: string, n: number): string {
  return n === 1 ? base : `${base.slice(0, MAX_OWNER_NAME_LENGTH - 1 - String(n).length)}-${n}`;
}

export function ownerNameBase(email: string): string {
  const local = email.split('@')[0] ?? '';
  const cleaned = local
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40)
    .replace(/-+$/, '');
  return /^[a-z]/.test(cleaned) ? cleaned : `u-${cleaned || 'user'}`;
}
