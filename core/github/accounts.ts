import type { Db } from '../db/client.ts';
import { isUniqueViolation } from '../db/unique-violation.ts';
import { conflict, invalidInput } from '../errors.ts';
import type { GitHubApp, Installation } from './app.ts';

/** GitHub logins: 1-39 characters, alphanumerics and single hyphens, no hyphen at either end. */
const LOGIN = /^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){0,38}$/;

/**
 * Links `userId` to the GitHub account `login` (a user or an organization whose App
 * installation the user deploys from). An operator vouches for it (`deploy-mcp github link`)
 * until GitHub sign-in makes the link itself. A login belongs to one user.
 */
export async function linkGitHubLogin(db: Db, userId: string, login: string, actor: string) {
  const lower = login.trim().toLowerCase();
  if (!LOGIN.test(lower)) throw invalidInput(`"${login}" is not a GitHub login`);
  try {
    await db.$transaction([
      db.gitHubLink.upsert({ where: { userId }, create: { userId, login: lower }, update: { login: lower } }),
      db.auditEvent.create({
        data: {
          userId,
          actor,
          action: 'github.link',
          targetType: 'github_login',
          targetId: lower,
        },
      }),
    ]);
  } catch (err) {
    if (isUniqueViolation(err)) throw conflict(`GitHub login "${lower}" is already linked to another user`);
    throw err;
  }
  return lower;
}

/** Records an installation a signed webhook (or the App API) reported; `deleted` marks it gone. */
export async function recordInstallation(db: Db, i: Installation, deleted = false) {
  await db.gitHubInstallation.upsert({
    where: { installationId: i.id },
    create: {
      installationId: i.id,
      accountLogin: i.accountLogin,
      accountType: i.accountType,
      deletedAt: deleted ? new Date() : null,
    },
    update: {
      accountLogin: i.accountLogin,
      accountType: i.accountType,
      deletedAt: deleted ? new Date() : null,
    },
  });
}

export type GitHubStatus =
  | { state: 'not_configured' }
  | { state: 'not_linked' }
  | { state: 'not_installed'; login: string }
  | { state: 'installed'; login: string; installation: Installation };

/**
 * The caller's GitHub standing: the linked login and the App's installation on it. Known
 * installations come from the database; otherwise the App API is asked once and the answer kept.
 */
export async function gitHubStatus(
  db: Db,
  github: GitHubApp | undefined,
  userId: string,
): Promise<GitHubStatus> {
  if (!github) return { state: 'not_configured' };
  const link = await db.gitHubLink.findUnique({ where: { userId } });
  if (!link) return { state: 'not_linked' };
  const row = await db.gitHubInstallation.findFirst({
    where: { accountLogin: link.login, deletedAt: null },
    orderBy: { updatedAt: 'desc' },
  });
  if (row)
    return {
      state: 'installed',
      login: link.login,
      installation: { id: row.installationId, accountLogin: row.accountLogin, accountType: row.accountType },
    };
  const found = await github.installationOn(link.login);
  if (!found) return { state: 'not_installed', login: link.login };
  await recordInstallation(db, found);
  return { state: 'installed', login: link.login, installation: found };
}

/** What to tell an agent whose account cannot use GitHub yet. */
export function gitHubUnavailable(status: Exclude<GitHubStatus, { state: 'installed' }>): Error {
  switch (status.state) {
    case 'not_configured':
      return invalidInput('GitHub is not configured on this server; use host "internal" (our git server)');
    case 'not_linked':
      return invalidInput(
        'your account is not linked to a GitHub login yet: ask the operator to run ' +
          '`deploy-mcp github link --user <your email> --login <your GitHub login>`, or use host "internal"',
      );
    case 'not_installed':
      return invalidInput(
        `the GitHub App is not installed on "${status.login}": install it there (GitHub → Settings → ` +
          'Applications), then call again; whoami shows the installation status',
      );
  }
}

/** The user ids linked to an installation's account (the users its webhooks act for). */
export async function usersOfInstallation(db: Db, installationLogin: string): Promise<string[]> {
  const links = await db.gitHubLink.findMany({ where: { login: installationLogin.toLowerCase() } });
  return links.map((l) => l.userId);
}
