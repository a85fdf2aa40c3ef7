import type { Db } from '../../core/db/client.ts';
import { isUniqueViolation } from '../../core/db/unique-violation.ts';
import { createUser, normalizeEmail } from '../../core/users.ts';
import { ensureOwnerName } from '../../git/owner-names.ts';

/** A sign-in the provider vouched for. */
export type ProviderIdentity = {
  provider: 'firebase' | 'github';
  /** The provider's stable id (Firebase uid, GitHub numeric id): what the identity is keyed by. */
  subject: string;
  email: string | undefined;
  /** Whether the provider verified the address (only then may it create or link an account). */
  emailVerified: boolean;
  /** GitHub login, for display. */
  login?: string;
};

export class SignInRefused extends Error {}

/**
 * The user an outside identity signs in as. Known identity: its user, whatever the email says
 * now. New identity: linked to the account with the provider-verified email, or a new account
 * (with a readable, unique owner name: `ada`, then `ada-2`) on first sign-in.
 */
export async function userForIdentity(db: Db, id: ProviderIdentity, now: Date): Promise<string> {
  const known = await db.signInIdentity.findUnique({
    where: { provider_subject: { provider: id.provider, subject: id.subject } },
    select: { id: true, user: { select: { id: true, disabledAt: true } } },
  });
  if (known) {
    if (known.user.disabledAt) throw new SignInRefused('this account is disabled');
    await db.signInIdentity.update({
      where: { id: known.id },
      data: { lastSignInAt: now, email: id.email ?? null, login: id.login ?? null },
    });
    return known.user.id;
  }
  if (!id.email || !id.emailVerified)
    throw new SignInRefused(
      `your ${id.provider === 'github' ? 'GitHub' : 'Firebase'} account has no verified email address; verify one and try again`,
    );
  const email = normalizeEmail(id.email);
  let user = await db.user.findUnique({ where: { email }, select: { id: true, disabledAt: true } });
  if (user?.disabledAt) throw new SignInRefused('this account is disabled');
  if (!user) {
    try {
      user = await createUser(db, email, `sign_in:${id.provider}`);
    } catch (err) {
      // Another first sign-in with the same address won the race: use its account.
      user = await db.user.findUnique({ where: { email }, select: { id: true, disabledAt: true } });
      if (!user) throw err;
    }
  }
  await ensureOwnerName(db, user.id);
  try {
    await db.signInIdentity.create({
      data: {
        provider: id.provider,
        subject: id.subject,
        userId: user.id,
        email,
        login: id.login ?? null,
        createdAt: now,
        lastSignInAt: now,
      },
    });
  } catch (err) {
    if (!isUniqueViolation(err)) throw err;
    return userForIdentity(db, id, now);
  }
  return user.id;
}
