import { parseArgs } from 'node:util';
import { createApiKey, listApiKeys, revokeApiKey } from '../core/api-keys.ts';
import type { Config } from '../core/config.ts';
import { openDatabase } from '../core/db/client.ts';
import { invalidInput, notFound } from '../core/errors.ts';
import { createUser, getUserByEmail } from '../core/users.ts';
import { revokeGitToken } from '../git/tokens.ts';

/** Operator commands: users, API keys, git tokens. Safe while the server runs. */
export async function accounts(
  config: Config,
  group: 'users' | 'keys' | 'git-tokens',
  args: string[],
): Promise<void> {
  const [action, ...rest] = args;
  const db = await openDatabase(config.databaseUrl, { poolSize: 1 });
  try {
    const prisma = db.prisma;
    if (group === 'users' && action === 'create') {
      const [email] = positionals(rest, 1, 'users create <email>');
      const user = await createUser(prisma, email);
      console.log(`created user ${user.email} with project "default"`);
    } else if (group === 'keys' && action === 'create') {
      const { values, positionals: pos } = parseArgs({
        args: rest,
        options: { name: { type: 'string' } },
        allowPositionals: true,
      });
      const [email] = positionals(pos, 1, 'keys create <email> [--name N]');
      const user = await getUserByEmail(prisma, email);
      const { key, prefix } = await createApiKey(prisma, user.id, values.name ?? 'default');
      await prisma.auditEvent.create({
        data: {
          userId: user.id,
          actor: 'operator',
          action: 'api_key.create',
          targetType: 'api_key',
          targetId: prefix,
        },
      });
      console.log(`created API key ${prefix}… for ${user.email}. It is shown once; store it now:`);
      console.log(key);
    } else if (group === 'keys' && action === 'list') {
      const [email] = positionals(rest, 1, 'keys list <email>');
      const user = await getUserByEmail(prisma, email);
      const keys = await listApiKeys(prisma, user.id);
      if (!keys.length) console.log(`${user.email} has no API keys`);
      for (const k of keys) {
        const state = k.revokedAt ? `revoked ${k.revokedAt.toISOString()}` : 'active';
        const used = k.lastUsedAt ? k.lastUsedAt.toISOString() : 'never';
        console.log(
          `${k.prefix}  ${k.name}  created ${k.createdAt.toISOString()}  last used ${used}  ${state}`,
        );
      }
    } else if (group === 'keys' && action === 'revoke') {
      const [prefix] = positionals(rest, 1, 'keys revoke <prefix>');
      const key = await revokeApiKey(prisma, prefix);
      await prisma.auditEvent.create({
        data: {
          userId: key.userId,
          actor: 'operator',
          action: 'api_key.revoke',
          targetType: 'api_key',
          targetId: prefix,
        },
      });
      console.log(`revoked ${key.prefix} (${key.name})`);
    } else if (group === 'git-tokens' && action === 'revoke') {
      const [prefix] = positionals(rest, 1, 'git-tokens revoke <prefix>');
      if (!(await revokeGitToken(prisma, prefix))) throw notFound(`live git token ${prefix}`);
      console.log(`revoked git token ${prefix}`);
    } else {
      throw invalidInput(`unknown command "${group} ${action ?? ''}". Try: deploy-mcp --help`);
    }
  } finally {
    await db.close();
  }
}

function positionals(args: string[], n: number, usage: string): string[] & { 0: string } {
  const { positionals: pos } = parseArgs({ args, allowPositionals: true });
  if (pos.length !== n) throw invalidInput(`usage: deploy-mcp ${usage}`);
  return pos as string[] & { 0: string };
}
