// Client ID Metadata Documents (checklist B19): fetched only from public addresses, https only,
// no redirects, bounded in time and size, and the document must name itself and the redirect.
// No traffic leaves the machine: refusals happen before any connection, and the fetches that
// succeed go to a loopback HTTPS server through an injected resolver and address policy.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  fetchClientMetadata,
  isPublicAddress,
  type MetadataFetchOptions,
} from '../../mcp/auth/client-metadata-fetch.ts';
import { createLoginCode } from '../../mcp/auth/login-codes.ts';
import { connectClient, type McpTestServer, startMcpTestServer } from '../support/mcp.ts';
import { authorizeUrl, consent, PageClient, pkce, signIn, tokenRequest } from '../support/oauth.ts';
import { scratchDir } from '../support/scratch.ts';

const HOST = 'client.example';
const REDIRECT = 'http://127.0.0.1:40123/cb';
const scratch = scratchDir('cimd');
let ca = '';
let doc: https.Server;
let port = 0;
let connections = 0;
const resolved: string[] = [];

function url(p: string) {
  return `https://${HOST}:${port}${p}`;
}

beforeAll(async () => {
  const key = path.join(scratch.dir, 'key.pem');
  const cert = path.join(scratch.dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      `/CN=${HOST}`,
      '-addext',
      `subjectAltName=DNS:${HOST}`,
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'ignore' },
  );
  ca = fs.readFileSync(cert, 'utf8');
  doc = https.createServer({ key: fs.readFileSync(key), cert: ca }, (req, res) => {
    const p = req.url ?? '';
    const json = (body: unknown) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (p === '/client.json')
      return json({
        client_id: url('/client.json'),
        client_name: 'Metadata App',
        redirect_uris: [REDIRECT],
        token_endpoint_auth_method: 'none',
      });
    if (p === '/mismatch.json')
      return json({ client_id: url('/other.json'), client_name: 'Liar', redirect_uris: [REDIRECT] });
    if (p === '/redirect') return res.writeHead(302, { location: url('/client.json') }).end();
    if (p === '/big')
      return json({ client_id: url('/big'), pad: 'x'.repeat(17 * 1024), redirect_uris: [REDIRECT] });
    if (p === '/slow') return undefined; // never answers
    return res.writeHead(404).end();
  });
  doc.on('connection', () => connections++);
  await new Promise<void>((resolve) => doc.listen(0, '127.0.0.1', resolve));
  port = (doc.address() as AddressInfo).port;
});
afterAll(async () => {
  doc?.closeAllConnections();
  await new Promise((resolve) => doc?.close(resolve));
  scratch.cleanup();
});

/** Resolves HOST to `addresses` and records the lookups. */
const resolveTo =
  (...addresses: string[]) =>
  async (host: string) => {
    resolved.push(host);
    return addresses;
  };
/** The test's policy: the loopback server counts as public, nothing else changes. */
const loopbackAllowed = (a: string) => a === '127.0.0.1' || isPublicAddress(a);

describe('address policy', () => {
  it('refuses loopback, private, link-local (metadata), shared, multicast and mapped addresses', () => {
    for (const a of [
      '127.0.0.1',
      '10.1.2.3',
      '172.16.0.1',
      '192.168.1.1',
      '169.254.169.254',
      '100.64.0.1',
      '0.0.0.0',
      '224.0.0.1',
      '::1',
      '::',
      'fe80::1',
      'fd00::1',
      '::ffff:127.0.0.1',
      '::ffff:169.254.169.254',
      '64:ff9b::a9fe:a9fe',
      'not-an-ip',
    ])
      expect(isPublicAddress(a), a).toBe(false);
    for (const a of ['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111']) expect(isPublicAddress(a), a).toBe(true);
  });
});

describe('fetching a metadata document', () => {
  it('refuses a name that resolves to a private or loopback address, before connecting', async () => {
    const before = connections;
    for (const addresses of [
      ['127.0.0.1'],
      ['169.254.169.254'],
      ['10.0.0.5'],
      ['8.8.8.8', '127.0.0.1'],
      ['::1'],
    ]) {
      await expect(
        fetchClientMetadata(url('/client.json'), { resolve: resolveTo(...addresses), ca }),
        addresses.join(),
      ).rejects.toThrow(/non-public address/);
    }
    await expect(fetchClientMetadata(`https://127.0.0.1:${port}/client.json`, { ca })).rejects.toThrow(
      /non-public/,
    );
    await expect(fetchClientMetadata('https://169.254.169.254/latest/meta-data', {})).rejects.toThrow(
      /non-public/,
    );
    await expect(fetchClientMetadata('https://[::ffff:7f00:1]/x', {})).rejects.toThrow(/non-public/);
    expect(connections).toBe(before);
  });

  it('refuses http and credentials in the URL', async () => {
    const before = connections;
    await expect(
      fetchClientMetadata(`http://${HOST}:${port}/client.json`, {
        resolve: resolveTo('127.0.0.1'),
        isAllowedAddress: loopbackAllowed,
      }),
    ).rejects.toThrow(/https/);
    await expect(
      fetchClientMetadata(`https://u:p@${HOST}:${port}/client.json`, {
        resolve: resolveTo('127.0.0.1'),
        isAllowedAddress: loopbackAllowed,
      }),
    ).rejects.toThrow(/credentials/);
    expect(connections).toBe(before);
  });

  it('connects to the address it checked (resolved once), verifying the certificate for the name', async () => {
    resolved.length = 0;
    const body = (await fetchClientMetadata(url('/client.json'), {
      resolve: resolveTo('127.0.0.1'),
      isAllowedAddress: loopbackAllowed,
      ca,
    })) as { client_name: string };
    expect(body.client_name).toBe('Metadata App');
    expect(resolved).toEqual([HOST]);
    // Without our CA the self-signed certificate is refused: TLS is really verified.
    await expect(
      fetchClientMetadata(url('/client.json'), {
        resolve: resolveTo('127.0.0.1'),
        isAllowedAddress: loopbackAllowed,
      }),
    ).rejects.toThrow(/failed/);
  });

  it('does not follow redirects, stops at 16 KiB and gives up at its deadline', async () => {
    const opts: MetadataFetchOptions = {
      resolve: resolveTo('127.0.0.1'),
      isAllowedAddress: loopbackAllowed,
      ca,
    };
    await expect(fetchClientMetadata(url('/redirect'), opts)).rejects.toThrow(/redirect/);
    await expect(fetchClientMetadata(url('/big'), opts)).rejects.toThrow(/exceeds 16384 bytes/);
    await expect(fetchClientMetadata(url('/slow'), { ...opts, timeoutMs: 300 })).rejects.toThrow(
      /longer than 300 ms/,
    );
  });
});

describe('authorizing a metadata-document client', () => {
  let server: McpTestServer;
  let strict: McpTestServer;
  beforeAll(async () => {
    server = await startMcpTestServer({
      oauth: { metadataFetch: { resolve: resolveTo('127.0.0.1'), isAllowedAddress: loopbackAllowed, ca } },
    });
    // The production policy with the same resolver: the loopback document is off limits.
    strict = await startMcpTestServer({ oauth: { metadataFetch: { resolve: resolveTo('127.0.0.1'), ca } } });
  }, 60_000);
  afterAll(async () => {
    await server?.close();
    await strict?.close();
  });

  async function browserFor(s: McpTestServer, email: string) {
    const browser = new PageClient(s.origin);
    const { code } = await createLoginCode(s.db.prisma, email);
    await signIn(browser, code);
    return browser;
  }

  it('B19: a client whose client_id is its document URL gets through to tools/list', async () => {
    const browser = await browserFor(server, 'cimd@example.com');
    const { verifier, challenge } = pkce();
    const clientId = url('/client.json');
    const page = await browser.request(
      authorizeUrl(server.origin, { clientId, redirectUri: REDIRECT, challenge, method: 'S256', state: 's' }),
    );
    expect(page.status).toBe(200);
    expect(page.body).toContain('Metadata App');
    expect(page.body).toContain(`${HOST}:${port}`);
    const res = await consent(
      browser,
      authorizeUrl(server.origin, { clientId, redirectUri: REDIRECT, challenge, method: 'S256', state: 's' }),
    );
    const code = new URL(res.location ?? '').searchParams.get('code') ?? '';
    const tokens = await tokenRequest(server.origin, {
      grant_type: 'authorization_code',
      code,
      client_id: clientId,
      redirect_uri: REDIRECT,
      code_verifier: verifier,
    });
    expect(tokens.status).toBe(200);
    const client = await connectClient(server.url, String(tokens.json.access_token));
    expect((await client.listTools()).tools.length).toBeGreaterThan(0);
    await client.close();
  });

  it('B19: a document naming another client_id, or not listing the redirect URI, is refused with an error page', async () => {
    const browser = await browserFor(server, 'cimd2@example.com');
    const { challenge } = pkce();
    const liar = await browser.request(
      authorizeUrl(server.origin, {
        clientId: url('/mismatch.json'),
        redirectUri: REDIRECT,
        challenge,
        method: 'S256',
      }),
    );
    expect(liar.status).toBe(400);
    expect(liar.body).toContain('client_id is not the URL');
    const unlisted = await browser.request(
      authorizeUrl(server.origin, {
        clientId: url('/client.json'),
        redirectUri: 'http://127.0.0.1:40123/other',
        challenge,
        method: 'S256',
      }),
    );
    expect(unlisted.status).toBe(400);
    expect(unlisted.location).toBeUndefined();
    const http = await browser.request(
      authorizeUrl(server.origin, {
        clientId: `http://${HOST}:${port}/client.json`,
        redirectUri: REDIRECT,
        challenge,
        method: 'S256',
      }),
    );
    expect(http.status).toBe(400);
  });

  it('B19: with the production address policy a document on a private address is never fetched', async () => {
    const browser = await browserFor(strict, 'cimd3@example.com');
    const before = connections;
    const res = await browser.request(
      authorizeUrl(strict.origin, {
        clientId: url('/client.json'),
        redirectUri: REDIRECT,
        challenge: pkce().challenge,
        method: 'S256',
      }),
    );
    expect(res.status).toBe(400);
    expect(res.body).toContain('non-public address');
    expect(connections).toBe(before);
  });
});
