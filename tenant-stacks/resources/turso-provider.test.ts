import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTursoFake, type TursoFake } from '../../test/support/turso-fake.ts';
import {
  type TursoApi,
  type TursoDatabaseInputs,
  type TursoDatabaseOutputs,
  tursoDatabaseProvider,
} from './turso-provider.ts';

/*
 * The Turso provider against a local fake of the Platform API (test/support/turso-fake.ts),
 * through the real client, @tursodatabase/api. Its methods are called directly here (what the
 * Pulumi engine calls); test/resources/turso.test.ts runs it in real stacks.
 */

type Provider = {
  create(i: TursoDatabaseInputs): Promise<{ id: string; outs: TursoDatabaseOutputs }>;
  update(
    id: string,
    o: TursoDatabaseOutputs,
    n: TursoDatabaseInputs,
  ): Promise<{ outs: TursoDatabaseOutputs }>;
  delete(id: string, o: TursoDatabaseOutputs): Promise<void>;
  diff(
    id: string,
    o: TursoDatabaseOutputs,
    n: TursoDatabaseInputs,
  ): Promise<{ changes: boolean; replaces: string[] }>;
};
const provider = tursoDatabaseProvider as unknown as Provider;
const MODULE = createRequire(import.meta.url).resolve('@tursodatabase/api');

describe('Turso provider against the Platform API fake', () => {
  let fake: TursoFake;
  let api: TursoApi;
  let n = 0;
  const inputs = (over: Partial<TursoDatabaseInputs> = {}): TursoDatabaseInputs => ({
    api,
    group: 'dmcp-aws-us-east-1',
    location: 'aws-us-east-1',
    database: `db-${++n}-${Date.now().toString(36)}`,
    tokenExpiration: '2w',
    tokenVersion: 0,
    ...over,
  });

  beforeAll(async () => {
    fake = await startTursoFake('acme');
    api = { url: fake.url, org: fake.org, token: fake.apiToken, module: MODULE, timeoutMs: 5_000 };
  });
  afterAll(async () => {
    await fake?.close();
  });

  it('the fake answers the real client as the spec says', async () => {
    const { createClient } = await import('@tursodatabase/api');
    const client = createClient({ org: fake.org, token: fake.apiToken, baseUrl: `${fake.url}/v1/` });
    const group = await client.groups.create('spec-group', 'aws-eu-west-1');
    expect(group).toMatchObject({ name: 'spec-group', primary: 'aws-eu-west-1' });
    const db = await client.databases.create('spec-db', { group: 'spec-group' });
    expect(db).toEqual({ id: expect.any(String), hostname: 'spec-db-acme.turso.io', name: 'spec-db' });
    expect(await client.databases.get('spec-db')).toMatchObject({ name: 'spec-db', group: 'spec-group' });
    expect((await client.locations.list()).map((l) => l.code)).toContain('aws-us-east-1');
    const { jwt } = await client.databases.createToken('spec-db', {
      expiration: '1d',
      authorization: 'read-only',
    });
    expect(fake.verify('spec-db', jwt)).toMatchObject({ a: 'ro' });
    await expect(client.databases.create('spec-db', { group: 'spec-group' })).rejects.toMatchObject({
      status: 409,
    });
    await expect(client.databases.get('missing')).rejects.toMatchObject({ status: 404 });
    await client.databases.delete('spec-db');
    expect(fake.databases.has('spec-db')).toBe(false);
  });

  it('makes the group, the database and a full-access token that expires', async () => {
    const before = Math.floor(Date.now() / 1000);
    const i = inputs();
    const { id, outs } = await provider.create(i);
    expect(id).toBe(i.database);
    expect(outs.hostname).toBe(`${i.database}-acme.turso.io`);
    expect(fake.groups.get('dmcp-aws-us-east-1')?.primary).toBe('aws-us-east-1');
    expect(fake.databases.get(i.database)?.group).toBe('dmcp-aws-us-east-1');
    const claims = fake.verify(i.database, outs.token);
    expect(claims?.a).toBe('rw');
    // 2w = 14 days from now
    expect(Number(claims?.exp) - before).toBeGreaterThanOrEqual(14 * 86_400);
    expect(Number(claims?.exp) - before).toBeLessThanOrEqual(14 * 86_400 + 60);
    const minted = fake.requests.filter((r) => r.path.endsWith(`/databases/${i.database}/auth/tokens`));
    expect(minted.map((r) => r.query)).toEqual([{ expiration: '2w', authorization: 'full-access' }]);
    // A second database in the region reuses the group (its 409 is fine).
    const other = await provider.create(inputs());
    expect(fake.databases.get(other.id)?.group).toBe('dmcp-aws-us-east-1');
    expect(fake.groups.size).toBeGreaterThanOrEqual(1);
  });

  it('a retried create adopts its own database; a new token version invalidates the old token', async () => {
    const i = inputs();
    const first = await provider.create(i);
    const again = await provider.create(i); // the engine retrying after a create that went through
    expect(again.outs.hostname).toBe(first.outs.hostname);
    expect(fake.verify(i.database, first.outs.token)).toBeDefined();

    const same = await provider.update(i.database, first.outs, { ...i });
    expect(same.outs.token).toBe(first.outs.token); // nothing rotated
    const rotated = await provider.update(i.database, first.outs, { ...i, tokenVersion: 1 });
    expect(rotated.outs.token).not.toBe(first.outs.token);
    expect(fake.verify(i.database, first.outs.token)).toBeUndefined();
    expect(fake.verify(i.database, again.outs.token)).toBeUndefined();
    expect(fake.verify(i.database, rotated.outs.token)?.a).toBe('rw');
    expect((await provider.diff(i.database, rotated.outs, { ...i, tokenVersion: 1 })).changes).toBe(false);
    expect((await provider.diff(i.database, rotated.outs, { ...i, tokenVersion: 2 })).changes).toBe(true);
  });

  it('delete removes the database; one gone already is fine', async () => {
    const i = inputs();
    const { outs } = await provider.create(i);
    await provider.delete(i.database, outs);
    expect(fake.databases.has(i.database)).toBe(false);
    await provider.delete(i.database, outs);
  });

  it('a single 5xx is tried again; a lasting one gives up after 3 attempts', async () => {
    const i = inputs();
    fake.failNext(503, 1, /\/databases$/);
    const { outs } = await provider.create(i);
    expect(fake.verify(i.database, outs.token)).toBeDefined();

    const j = inputs();
    const seen = fake.requests.length;
    fake.failNext(502, 3, /\/databases$/);
    await expect(provider.create(j)).rejects.toThrow(
      /^Turso is unavailable \(HTTP 502\) after 3 attempts to make the database "db-.*"; .*again/,
    );
    const tries = fake.requests
      .slice(seen)
      .filter((r) => r.method === 'POST' && r.path.endsWith('/databases'));
    expect(tries).toHaveLength(3);
    expect(fake.databases.has(j.database)).toBe(false);
  });

  it('400, 401, 404 and 409 become messages saying what to do, without retrying', async () => {
    const seen = fake.requests.length;
    await expect(provider.create(inputs({ tokenExpiration: 'soon' }))).rejects.toThrow(
      /Turso refused to make a token .*HTTP 400: "Invalid expiration format".*DEPLOY_MCP_TURSO_/,
    );
    await expect(provider.create(inputs({ api: { ...api, token: 'wrong' } }))).rejects.toThrow(
      /platform API token \(HTTP 401\).*DEPLOY_MCP_TURSO_API_TOKEN.*"acme"/,
    );
    await expect(provider.create(inputs({ api: { ...api, org: 'nobody' } }))).rejects.toThrow(
      /HTTP 404.*DEPLOY_MCP_TURSO_ORG/,
    );
    const i = inputs();
    const { outs } = await provider.create(i);
    fake.databases.delete(i.database); // deleted outside Deploy MCP
    await expect(provider.update(i.database, outs, { ...i, tokenVersion: 1 })).rejects.toThrow(
      /HTTP 404.*delete_resource it and create it again/,
    );
    // The name is taken in another group (not ours to adopt).
    await provider.create(
      inputs({ database: 'taken-db', group: 'other-aws-eu-west-1', location: 'aws-eu-west-1' }),
    );
    await expect(provider.create(inputs({ database: 'taken-db' }))).rejects.toThrow(
      /exists already \(HTTP 409.*another name/,
    );
    // 4xx answers are not retried: one token request for the bad expiration.
    const tokenCalls = fake.requests.slice(seen).filter((r) => r.query.expiration === 'soon');
    expect(tokenCalls).toHaveLength(1);
  });

  it('every call is bounded in time', async () => {
    const hang = await import('node:http').then(
      (http) =>
        new Promise<import('node:http').Server>((resolve) => {
          const s = http.createServer(() => undefined); // never answers
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    );
    try {
      const port = (hang.address() as import('node:net').AddressInfo).port;
      await expect(
        provider.create(inputs({ api: { ...api, url: `http://127.0.0.1:${port}`, timeoutMs: 300 } })),
      ).rejects.toThrow(/Turso is unavailable \(no answer within 300 ms\) after 3 attempts/);
    } finally {
      hang.closeAllConnections();
      hang.close();
    }
  });
});
