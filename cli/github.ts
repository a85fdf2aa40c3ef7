import { parseArgs } from 'node:util';
import type { Config } from '../core/config.ts';
import { openDatabase } from '../core/db/client.ts';
import { invalidInput } from '../core/errors.ts';
import { linkGitHubLogin } from '../core/github/accounts.ts';
import { getUserByEmail } from '../core/users.ts';

export const GITHUB_USAGE = 'github link --user <email> --login <github login>';

/**
 * `deploy-mcp github link`: an operator vouches that a user owns a GitHub account (a user or an
 * organization with our App installed), until GitHub sign-in makes that link itself.
 */
export async function github(config: Config, args: string[]): Promise<void> {
  const [action, ...rest] = args;
  const { values } = parseArgs({
    args: rest,
    options: { user: { type: 'string' }, login: { type: 'string' } },
  });
  if (action !== 'link' || !values.user || !values.login)
    throw invalidInput(`usage: deploy-mcp ${GITHUB_USAGE}`);
  const db = await openDatabase(config.databaseUrl, { poolSize: 1 });
  try {
    const user = await getUserByEmail(db.prisma, values.user);
    const login = await linkGitHubLogin(db.prisma, user.id, values.login, 'operator');
    console.log(`linked ${user.email} to GitHub account "${login}"`);
  } finally {
    await db.close();
  }
}
