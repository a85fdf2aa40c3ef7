import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ApiKeyAuthenticator, createApiKey, revokeApiKey } from '../../core/api-keys.ts';
import { type Database, openDatabase } from '../../core/db/client.ts';
import { migrate } from '../../core/db/migrate.ts';
import { describeEachDatabase } from '../support/databases.ts';

/**
 * ApiKeyAuthenticator reads the key and its user in one raw statement: the same answers on both
 * product databases, and a change made through another connection (another server process)
 * applies to the very next request.
 */
describeEachDatabase('API key authentication', (dbs) => {
  let db: Database;
  let other: Database;
  let auth: ApiKeyAuthenticator;

  beforeAll(async () => {
    const url = await dbs.fresh('auth');
    await migrate(url);
    db = await openDatabase(url);
    other = await openDatabase(url);
    auth = new ApiKeyAuthenticator(db.prisma);
  });
  afterAll(async () => {
    await db?.close();
    await other?.close();
  });

  async function keyFor(email: string) {
    const user = await db.prisma.user.create({ data: { email } });
    return { user, ...(await createApiKey(db.prisma, user.id, 'laptop')) };
  }

  it('names the caller of a valid key, and nobody for a wrong secret or an unknown prefix', async () => {
    const { user, key, prefix } = await keyFor('ada@example.com');
    expect(await auth.authenticate(key)).toEqual({
      userId: user.id,
      email: 'ada@example.com',
      keyId: expect.any(String),
      keyPrefix: prefix,
      keyName: 'laptop',
    });
    const wrongSecret = `${key.slice(0, -1)}${key.endsWith('A') ? 'B' : 'A'}`;
    expect(await auth.authenticate(wrongSecret)).toBeUndefined();
    expect(await auth.authenticate(`dk_live_${'x'.repeat(32)}`)).toBeUndefined();
    expect(await auth.authenticate('not a key')).toBeUndefined();
  });

  it('refuses a key on the next request once it is revoked, expired, or its user disabled elsewhere', async () => {
    const revoked = await keyFor('revoked@example.com');
    expect(await auth.authenticate(revoked.key)).toBeDefined();
    await revokeApiKey(other.prisma, revoked.prefix);
    expect(await auth.authenticate(revoked.key)).toBeUndefined();

    const expired = await keyFor('expired@example.com');
    expect(await auth.authenticate(expired.key)).toBeDefined();
    await other.prisma.apiKey.update({
      where: { prefix: expired.prefix },
      data: { expiresAt: new Date(Date.now() - 1000) },
    });
    expect(await auth.authenticate(expired.key)).toBeUndefined();
    await other.prisma.apiKey.update({
      where: { prefix: expired.prefix },
      data: { expiresAt: new Date(Date.now() + 3_600_000) },
    });
    expect(await auth.authenticate(expired.key)).toBeDefined();

    const disabled = await keyFor('disabled@example.com');
    expect(await auth.authenticate(disabled.key)).toBeDefined();
    await other.prisma.user.update({ where: { id: disabled.user.id }, data: { disabledAt: new Date() } });
    expect(await auth.authenticate(disabled.key)).toBeUndefined();
  });

  it('records last_used_at at most once a minute per key, and still checks revocation on every request', async () => {
    let clock = Date.parse('2030-01-01T00:00:00Z');
    const clocked = new ApiKeyAuthenticator(db.prisma, undefined, () => clock);
    const { key, prefix } = await keyFor('busy@example.com');
    const lastUsed = async () =>
      (await other.prisma.apiKey.findUniqueOrThrow({ where: { prefix } })).lastUsedAt?.getTime() ?? null;
    // The write is not awaited by authenticate: wait for it, bounded.
    const lastUsedBecomes = async (want: number) => {
      for (let i = 0; i < 100 && (await lastUsed()) !== want; i++) await sleep(50);
      return lastUsed();
    };

    const first = clock;
    expect(await clocked.authenticate(key)).toBeDefined();
    expect(await lastUsedBecomes(first)).toBe(first);
    clock += 30_000;
    expect(await clocked.authenticate(key)).toBeDefined();
    await sleep(200);
    expect(await lastUsed()).toBe(first);
    clock += 31_000;
    expect(await clocked.authenticate(key)).toBeDefined();
    expect(await lastUsedBecomes(clock)).toBe(clock);

    // Within the minute of the last write, a revocation elsewhere still applies at once.
    clock += 1_000;
    await revokeApiKey(other.prisma, prefix);
    expect(await clocked.authenticate(key)).toBeUndefined();
  });

  it('records last_used_at for every key of a burst (written together while a write is under way)', async () => {
    const keys = [];
    for (let i = 0; i < 6; i++) keys.push(await keyFor(`burst${i}@example.com`));
    const callers = await Promise.all(keys.map((k) => auth.authenticate(k.key)));
    expect(callers.every((c) => c !== undefined)).toBe(true);
    const prefixes = keys.map((k) => k.prefix);
    const unrecorded = async () =>
      other.prisma.apiKey.count({ where: { prefix: { in: prefixes }, lastUsedAt: null } });
    for (let i = 0; i < 100 && (await unrecorded()) > 0; i++) await sleep(50);
    expect(await unrecorded()).toBe(0);
  });
});
