import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/*
 * A local fake of Turso's Platform API, after the official OpenAPI spec (tursodatabase/turso-docs,
 * api-reference/openapi.json): paths under /v1, `Authorization: Bearer <platform token>`, errors
 * as `{"error": "..."}`. It keeps groups and databases in memory and signs database tokens as
 * EdDSA JWTs with a key per database; rotating a database's tokens replaces its key, so every
 * older token stops verifying (what Turso's sqld would then refuse).
 */

type Group = { name: string; uuid: string; locations: string[]; primary: string; delete_protection: boolean };
type Database = {
  Name: string;
  DbId: string;
  Hostname: string;
  group: string;
  primaryRegion: string;
  regions: string[];
  block_reads: boolean;
  block_writes: boolean;
  delete_protection: boolean;
  key: crypto.KeyObject;
  publicKey: crypto.KeyObject;
};

/** A request the fake received (the platform token left out). */
export type FakeRequest = { method: string; path: string; query: Record<string, string> };

export type TursoFake = {
  /** Base URL to give the product (`DEPLOY_MCP_TURSO_API_URL`): no `/v1`. */
  url: string;
  org: string;
  /** The platform API token the fake accepts. */
  apiToken: string;
  requests: FakeRequest[];
  groups: Map<string, Group>;
  databases: Map<string, Database>;
  /** The next `times` requests whose path matches `path` (all when absent) answer `status`. */
  failNext(status: number, times: number, path?: RegExp): void;
  /** The claims of `jwt` when it is a valid token of database `name` now; else undefined. */
  verify(name: string, jwt: string): Record<string, unknown> | undefined;
  close(): Promise<void>;
};

const LOCATIONS: Record<string, string> = {
  'aws-us-east-1': 'AWS US East (Virginia)',
  'aws-eu-west-1': 'AWS EU West (Ireland)',
  'aws-ap-northeast-1': 'AWS AP NorthEast (Tokyo)',
};

const b64url = (v: Buffer | string) => Buffer.from(v).toString('base64url');

/** Seconds of a Turso duration (`2w1d30m`); undefined when it is not one. */
function durationSeconds(text: string): number | undefined {
  if (!/^(\d+[wdhms])+$/.test(text)) return undefined;
  const unit: Record<string, number> = { w: 604_800, d: 86_400, h: 3_600, m: 60, s: 1 };
  let total = 0;
  for (const m of text.matchAll(/(\d+)([wdhms])/g)) total += Number(m[1]) * (unit[m[2] ?? 's'] ?? 1);
  return total;
}

export async function startTursoFake(org = 'acme'): Promise<TursoFake> {
  const apiToken = `platform-${crypto.randomBytes(16).toString('hex')}`;
  const groups = new Map<string, Group>();
  const databases = new Map<string, Database>();
  const requests: FakeRequest[] = [];
  const failures: { status: number; left: number; path: RegExp | undefined }[] = [];

  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://fake');
      const method = req.method ?? 'GET';
      requests.push({ method, path: url.pathname, query: Object.fromEntries(url.searchParams) });
      const send = (status: number, payload?: unknown) => {
        const text = payload === undefined ? '' : JSON.stringify(payload);
        res.writeHead(status, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(text),
        });
        res.end(text);
      };
      const error = (status: number, message: string) => send(status, { error: message });
      const failure = failures.find((f) => f.left > 0 && (!f.path || f.path.test(url.pathname)));
      if (failure) {
        failure.left--;
        return error(failure.status, failure.status >= 500 ? 'internal error' : 'injected failure');
      }
      if (req.headers.authorization !== `Bearer ${apiToken}`) return error(401, 'unauthorized');
      if (method === 'GET' && url.pathname === '/v1/locations') return send(200, { locations: LOCATIONS });
      const prefix = `/v1/organizations/${org}/`;
      if (!url.pathname.startsWith(prefix)) return error(404, 'organization not found');
      const parts = url.pathname.slice(prefix.length).split('/').map(decodeURIComponent);
      let input: Record<string, unknown> = {};
      try {
        input = body ? (JSON.parse(body) as Record<string, unknown>) : {};
      } catch {
        return error(400, 'invalid JSON body');
      }
      const [kind, name, sub, action] = parts;

      if (kind === 'groups' && parts.length === 1 && method === 'POST') {
        const gname = String(input.name ?? '');
        const location = String(input.location ?? '');
        if (!/^[a-z0-9-]{1,64}$/.test(gname)) return error(400, 'invalid group name');
        if (!LOCATIONS[location]) return error(400, `invalid location ${location}`);
        if (groups.has(gname)) return error(409, 'group already exists');
        const group: Group = {
          name: gname,
          uuid: crypto.randomUUID(),
          locations: [location],
          primary: location,
          delete_protection: false,
        };
        groups.set(gname, group);
        return send(200, { group });
      }
      if (kind === 'groups' && parts.length === 2 && method === 'GET') {
        const group = groups.get(name ?? '');
        return group ? send(200, { group }) : error(404, 'group not found');
      }
      if (kind === 'databases' && parts.length === 1 && method === 'POST') {
        const dname = String(input.name ?? '');
        const gname = String(input.group ?? '');
        if (!/^[a-z0-9-]{1,64}$/.test(dname))
          return error(400, 'invalid database name: only lowercase letters, numbers and dashes, at most 64');
        const group = groups.get(gname);
        if (!group) return error(400, 'group not found');
        if (databases.has(dname)) return error(409, `database with name ${dname} already exists`);
        const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
        const db: Database = {
          Name: dname,
          DbId: crypto.randomUUID(),
          Hostname: `${dname}-${org}.turso.io`,
          group: gname,
          primaryRegion: group.primary,
          regions: [group.primary],
          block_reads: false,
          block_writes: false,
          delete_protection: false,
          key: privateKey,
          publicKey,
        };
        databases.set(dname, db);
        return send(200, { database: { DbId: db.DbId, Hostname: db.Hostname, Name: db.Name } });
      }
      if (kind === 'databases' && parts.length === 1 && method === 'GET') {
        const group = url.searchParams.get('group');
        const list = [...databases.values()].filter((d) => !group || d.group === group).map(shown);
        return send(200, { databases: list });
      }
      const db = kind === 'databases' ? databases.get(name ?? '') : undefined;
      const notFound = () => error(404, `could not find database with name ${name}: record not found`);
      if (kind === 'databases' && parts.length === 2 && method === 'GET')
        return db ? send(200, { database: shown(db) }) : notFound();
      if (kind === 'databases' && parts.length === 2 && method === 'DELETE') {
        if (!db) return notFound();
        databases.delete(db.Name);
        return send(200, { database: db.Name });
      }
      if (kind === 'databases' && sub === 'auth' && action === 'tokens' && method === 'POST') {
        if (!db) return notFound();
        const expiration = url.searchParams.get('expiration') ?? 'never';
        const authorization = url.searchParams.get('authorization') ?? 'full-access';
        const seconds = expiration === 'never' ? undefined : durationSeconds(expiration);
        if (expiration !== 'never' && seconds === undefined) return error(400, 'Invalid expiration format');
        if (authorization !== 'full-access' && authorization !== 'read-only')
          return error(400, 'invalid authorization');
        const now = Math.floor(Date.now() / 1000);
        const claims = {
          a: authorization === 'full-access' ? 'rw' : 'ro',
          iat: now,
          id: db.DbId,
          ...(seconds === undefined ? {} : { exp: now + seconds }),
        };
        const head = `${b64url(JSON.stringify({ alg: 'EdDSA', typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}`;
        const sig = crypto.sign(null, Buffer.from(head), db.key);
        return send(200, { jwt: `${head}.${b64url(sig)}` });
      }
      if (kind === 'databases' && sub === 'auth' && action === 'rotate' && method === 'POST') {
        if (!db) return notFound();
        const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
        db.key = privateKey;
        db.publicKey = publicKey;
        return send(200); // "Successful response (No Content)"
      }
      return error(404, 'not found');
    });
  });

  function shown(d: Database) {
    const { key: _k, publicKey: _p, ...rest } = d;
    return rest;
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    org,
    apiToken,
    requests,
    groups,
    databases,
    failNext(status, times, path) {
      failures.push({ status, left: times, path });
    },
    verify(name, jwt) {
      const db = databases.get(name);
      const [head, payload, sig] = jwt.split('.');
      if (!db || !head || !payload || !sig) return undefined;
      const ok = crypto.verify(
        null,
        Buffer.from(`${head}.${payload}`),
        db.publicKey,
        Buffer.from(sig, 'base64url'),
      );
      if (!ok) return undefined;
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
      if (typeof claims.exp === 'number' && claims.exp < Date.now() / 1000) return undefined;
      return claims;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
