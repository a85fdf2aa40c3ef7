import { randomInt } from 'node:crypto';
import type { Db } from '../../core/db/client.ts';
import { createUser, normalizeEmail } from '../../core/users.ts';
import { ensureOwnerName } from '../../git/owner-names.ts';
import { hashSecret } from './secrets.ts';

/** Lifetime of a login code. */
export const LOGIN_CODE_TTL_MS = 10 * 60 * 1000;
// Crockford's base32: no I, L, O, U, so a code read aloud or retyped survives.
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const LENGTH = 16; // 80 bits

/** Uppercase, dashes and spaces removed; the confusable letters mapped as Crockford does. */
export function normalizeLoginCode(input: string): string {
  return input.toUpperCase().replace(/[\s-]/g, '').replace(/[IL]/g, '1').replace(/O/g, '0');
}

/**
 * A one-time sign-in code for `email` (the operator prints it: `deploy-mcp login-code`), creating
 * the account on first use. 80 random bits, stored hashed, single use, 10 minutes.
 */
export async function createLoginCode(db: Db, rawEmail: string, now = new Date()) {
  const email = normalizeEmail(rawEmail);
  let user = await db.user.findUnique({ where: { email } });
  let created = false;
  if (!user) {
    user = await createUser(db, email, 'operator');
    created = true;
  }
  await ensureOwnerName(db, user.id);
  let code = '';
  for (let i = 0; i < LENGTH; i++) code += ALPHABET[randomInt(ALPHABET.length)];
  const expiresAt = new Date(now.getTime() + LOGIN_CODE_TTL_MS);
  await db.loginCode.create({
    data: { codeHash: hashSecret(code), userId: user.id, createdAt: now, expiresAt },
  });
  await db.auditEvent.create({
    data: {
      userId: user.id,
      actor: 'operator',
      action: 'login_code.create',
      targetType: 'user',
      targetId: user.id,
    },
  });
  return { code: code.match(/.{4}/g)?.join('-') ?? code, email, expiresAt, created };
}

/** Redeems a login code: the user it signs in, or undefined (unknown, used, expired). */
export async function redeemLoginCode(db: Db, input: string, now: Date): Promise<string | undefined> {
  const code = normalizeLoginCode(input);
  if (code.length !== LENGTH || [...code].some((c) => !ALPHABET.includes(c))) return undefined;
  const row = await db.loginCode.findUnique({
    where: { codeHash: hashSecret(code) },
    select: { id: true, userId: true, expiresAt: true },
  });
  if (!row || row.expiresAt <= now) return undefined;
  const claimed = await db.loginCode.updateMany({
    where: { id: row.id, usedAt: null },
    data: { usedAt: now },
  });
  return claimed.count === 1 ? row.userId : undefined;
}
