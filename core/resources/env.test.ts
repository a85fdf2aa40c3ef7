import { describe, expect, it } from 'vitest';
import { SecretBox } from '../secrets.ts';
import { connectionAad } from './catalog.ts';
import { resourceEnv, resourcePrefix } from './env.ts';

const secrets = new SecretBox(Buffer.alloc(32, 7));
const attachment = (id: string, name: string, url: string, at: number, status = 'ready') => ({
  attachedAt: new Date(at),
  resource: {
    id,
    name,
    status,
    connectionEncrypted: secrets.sealJson({ DATABASE_URL: url, PGUSER: name }, connectionAad(id)),
  },
});

describe('resource variables of a release', () => {
  it('one resource: its variables, unprefixed', () => {
    expect(resourceEnv([attachment('r1', 'db', 'postgresql://a', 1)], secrets)).toEqual({
      DATABASE_URL: 'postgresql://a',
      PGUSER: 'db',
    });
  });

  it('several: the oldest attachment keeps the plain names, every one gets its prefixed copy', () => {
    const env = resourceEnv(
      [attachment('r2', 'cache-db', 'postgresql://b', 2), attachment('r1', 'db', 'postgresql://a', 1)],
      secrets,
    );
    expect(env).toEqual({
      DATABASE_URL: 'postgresql://a',
      PGUSER: 'db',
      DB_DATABASE_URL: 'postgresql://a',
      DB_PGUSER: 'db',
      CACHE_DB_DATABASE_URL: 'postgresql://b',
      CACHE_DB_PGUSER: 'cache-db',
    });
  });

  it('leaves out resources that are not ready, and refuses a connection sealed for another row', () => {
    expect(resourceEnv([attachment('r1', 'db', 'x', 1, 'provisioning')], secrets)).toEqual({});
    const moved = attachment('r1', 'db', 'x', 1);
    moved.resource.id = 'r9';
    expect(() => resourceEnv([moved], secrets)).toThrow();
    expect(resourcePrefix('main-db2')).toBe('MAIN_DB2_');
  });
});
