import http from 'node:http';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { revokeApiKey } from '../../core/api-keys.ts';
import { call, connectClient, type McpTestServer, startMcpTestServer } from '../support/mcp.ts';

const INIT = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
};

describe('MCP front door: authentication and transport rules', () => {
  let srv: McpTestServer;
  let user: { userId: string; key: string; prefix: string };

  beforeAll(async () => {
    srv = await startMcpTestServer();
    user = await srv.newUser('auth@example.com');
  });
  afterAll(() => srv.close());

  function post(headers: Record<string, string>, body: unknown = INIT, url = srv.url) {
    return fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...headers,
      },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  }

  it('serves tools to a valid key through the SDK client', async () => {
    const client = await connectClient(srv.url, user.key);
    const res = await call(client, 'whoami');
    expect(res.isError).toBeFalsy();
    expect(res.structuredContent).toMatchObject({ email: 'auth@example.com' });
    await client.close();
  });

  it('answers 401 with a Bearer challenge when no key is sent', async () => {
    const res = await post({});
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer realm="deploy-mcp"/);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(
      /Authorization: Bearer/,
    );
  });

  it('rejects an SDK client without a key at connect time', async () => {
    const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
    const { StreamableHTTPClientTransport } = await import(
      '@modelcontextprotocol/sdk/client/streamableHttp.js'
    );
    const client = new Client({ name: 'anon', version: '1' });
    await expect(client.connect(new StreamableHTTPClientTransport(new URL(srv.url)))).rejects.toThrow(
      /Authentication required/,
    );
  });

  it.each([
    ['an unknown well-formed key', `dk_live_${'A'.repeat(32)}`],
    ['a malformed key', 'dk_live_short'],
    ['a key with a right prefix but wrong secret', () => `${user.prefix}${'x'.repeat(22)}`],
    ['another scheme', 'Basic Zm9vOmJhcg=='],
  ])('answers 401 invalid_token for %s', async (_what, value) => {
    const presented = typeof value === 'function' ? value() : value;
    const header = presented.startsWith('Basic ') ? presented : `Bearer ${presented}`;
    const res = await post({ authorization: header });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });

  it('stops accepting a key as soon as it is revoked', async () => {
    const other = await srv.newUser('revoke@example.com');
    expect((await post({ authorization: `Bearer ${other.key}` })).status).toBe(200);
    await revokeApiKey(srv.db.prisma, other.prefix);
    expect((await post({ authorization: `Bearer ${other.key}` })).status).toBe(401);
  });

  it('refuses keys in the query string, even alongside a valid header', async () => {
    for (const q of [`?api_key=${user.key}`, `?token=x`, `?x=${user.key}`]) {
      const res = await post({ authorization: `Bearer ${user.key}` }, INIT, `${srv.url}${q}`);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(
        /not accepted in the URL/,
      );
    }
  });

  it('answers 403 to a foreign Origin and accepts its own', async () => {
    const foreign = await post({ authorization: `Bearer ${user.key}`, origin: 'http://evil.example' });
    expect(foreign.status).toBe(403);
    const own = await post({ authorization: `Bearer ${user.key}`, origin: srv.origin });
    expect(own.status).toBe(200);
  });

  it('rejects an unsupported MCP-Protocol-Version header', async () => {
    const list = { jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} };
    const res = await post(
      { authorization: `Bearer ${user.key}`, 'mcp-protocol-version': '1999-01-01' },
      list,
    );
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/protocol version/i);
  });

  it('answers GET and DELETE with 405 (stateless: no sessions to stream or end)', async () => {
    for (const method of ['GET', 'DELETE']) {
      const res = await fetch(srv.url, { method, headers: { authorization: `Bearer ${user.key}` } });
      expect(res.status).toBe(405);
      expect(res.headers.get('allow')).toBe('POST');
    }
  });

  it('answers malformed and oversized bodies with JSON-RPC errors, not 500s', async () => {
    const bad = await post({ authorization: `Bearer ${user.key}` }, '{not json');
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: number } }).error.code).toBe(-32700);
    const big = await post({ authorization: `Bearer ${user.key}` }, { ...INIT, pad: 'x'.repeat(1_100_000) });
    expect(big.status).toBe(413);
  });

  it('answers bodies it cannot decode with 400, unknown encodings and charsets with 415', async () => {
    /** A raw request: fetch would not send a body that does not match its Content-Encoding. */
    const raw = (headers: Record<string, string>, body: Buffer) =>
      new Promise<{ status: number; error: { code: number; message: string } | undefined }>(
        (resolve, reject) => {
          const req = http.request(
            srv.url,
            {
              method: 'POST',
              headers: {
                'content-type': 'application/json',
                accept: 'application/json, text/event-stream',
                authorization: `Bearer ${user.key}`,
                'content-length': String(body.length),
                ...headers,
              },
            },
            (res) => {
              let text = '';
              res.on('data', (c) => {
                text += c;
              });
              res.on('end', () => {
                const parsed = JSON.parse(text) as { error?: { code: number; message: string } };
                resolve({ status: res.statusCode ?? 0, error: parsed.error });
              });
            },
          );
          req.on('error', reject);
          req.end(body);
        },
      );
    const json = Buffer.from(JSON.stringify(INIT));
    // A correctly compressed body is served: the 400 below is about the bytes, not the header.
    expect((await raw({ 'content-encoding': 'br' }, zlib.brotliCompressSync(json))).status).toBe(200);
    const garbage = await raw({ 'content-encoding': 'br' }, Buffer.from('not brotli at all \u0000\u00ff'));
    expect(garbage.status).toBe(400);
    expect(garbage.error?.message).toMatch(/could not be read or decoded for its Content-Encoding/);
    const truncated = await raw({ 'content-encoding': 'gzip' }, zlib.gzipSync(json).subarray(0, 20));
    expect(truncated.status).toBe(400);
    const unknown = await raw({ 'content-encoding': 'foo' }, json);
    expect(unknown).toMatchObject({ status: 415, error: { code: -32600 } });
    expect(unknown.error?.message).toMatch(/Unsupported Content-Encoding "foo": send identity, gzip/);
    const klingon = await raw({ 'content-type': 'application/json; charset=klingon' }, json);
    expect(klingon).toMatchObject({ status: 415, error: { code: -32600 } });
    expect(klingon.error?.message).toMatch(/Unsupported charset "klingon": send JSON in UTF-8/);
  });

  it('records last_used_at for the key that was used', async () => {
    const key = await srv.db.prisma.apiKey.findUniqueOrThrow({ where: { prefix: user.prefix } });
    expect(key.lastUsedAt).not.toBeNull();
  });
});
