import { parseArgs } from 'node:util';
import type { Config } from '../core/config.ts';
import { openDatabase } from '../core/db/client.ts';
import { invalidInput } from '../core/errors.ts';
import { createLoginCode } from '../mcp/auth/login-codes.ts';

export const LOGIN_CODE_USAGE = 'login-code --user <email>';

/** Prints a one-time sign-in code for the web pages (the embedded sign-in; no outside provider). */
export async function loginCode(config: Config, args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { user: { type: 'string' } } });
  if (!values.user) throw invalidInput(`usage: deploy-mcp ${LOGIN_CODE_USAGE}`);
  const db = await openDatabase(config.databaseUrl, { poolSize: 1 });
  try {
    const { code, email, expiresAt, created } = await createLoginCode(db.prisma, values.user);
    if (created) console.log(`created user ${email} with project "default"`);
    console.log(
      `one-time login code for ${email}, valid until ${expiresAt.toISOString()}; enter it at ${config.publicUrl}/sign-in:`,
    );
    console.log(code);
  } finally {
    await db.close();
  }
}
