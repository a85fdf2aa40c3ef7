import { z } from 'zod';
import type { Db } from './db/client.ts';
import { conflict, invalidInput, notFound } from './errors.ts';

export const DEFAULT_PROJECT = 'default';

const email = z.email().max(254);

export function normalizeEmail(input: string): string {
  const parsed = email.safeParse(input.trim().toLowerCase());
  if (!parsed.success) throw invalidInput(`not a valid email address: ${JSON.stringify(input)}`);
  return parsed.data;
}

/** Creates a user with their `default` project. */
export async function createUser(db: Db, rawEmail: string, actor = 'operator') {
  const address = normalizeEmail(rawEmail);
  try {
    return await db.$transaction(async (tx) => {
      const user = await tx.user.create({
        data: { email: address, projects: { create: { name: DEFAULT_PROJECT } } },
      });
      await tx.auditEvent.create({
        data: { userId: user.id, actor, action: 'user.create', targetType: 'user', targetId: user.id },
      });
      return user;
    });
  } catch (err) {
    if ((err as { code?: string }).code === 'P2002') throw conflict(`user ${address} already exists`);
    throw err;
  }
}

export async function getUserByEmail(db: Db, rawEmail: string) {
  const address = normalizeEmail(rawEmail);
  const user = await db.user.findUnique({ where: { email: address } });
  if (!user) throw notFound(`user ${address}`, `Create it with: deploy-mcp users create ${address}`);
  return user;
}
