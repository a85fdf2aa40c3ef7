// The MCP authorization server over real HTTP (mcp/auth/): checklist items A1-A4, A6-A8 and
// B9-B18, B20 (mcp/README.md maps each to its test).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLoginCode } from '../../mcp/auth/login-codes.ts';
import { connectClient, type McpTestServer, startMcpTestServer } from '../support/mcp.ts';
import {
  authorizeUrl,
  consent,
  PageClient,
  pkce,
  registerClient,
  signIn,
  TestClock,
  tokenRequest,
} from '../support/oauth.ts';

const clock = new TestClock();
let server: McpTestServer;
let origin: string;
let resource: string;
const REDIRECT = 'http://127.0.0.1:49152/callback';
let seq = 0;

beforeAll(async () => {
  server = await startMcpTestServer({
    oauth: { now: clock.now, registrationLimits: { perAddressPerHour: 1000, perHour: 1000 } },
  });
  origin = server.origin;
  resource = `${origin}/mcp`;
}, 60_000);
afterAll(() => server?.close());

/** A user signed in in a fresh browser. */
async function signedInBrowser(email = `user${++seq}@example.com`) {
  const browser = new PageClient(origin);
  const { code } = await createLoginCode(server.db.prisma, email);
  const res = await signIn(browser, code);
  expect(res.status).toBe(303);
  return { browser, email };
}

/** Register, sign in, consent, and exchange the code: a full authorization code flow. */
async function fullFlow(options: { email?: string; redirect?: string } = {}) {
  const redirect = options.redirect ?? REDIRECT;
  const client = await registerClient(origin, [redirect]);
  const { browser, email } = await signedInBrowser(options.email);
  const { verifier, challenge } = pkce();
  const res = await consent(
    browser,
    authorizeUrl(origin, {
      clientId: client.client_id,
      redirectUri: redirect,
      challenge,
      method: 'S256',
      state: 'st-1',
      resource,
    }),
  );
  expect(res.status).toBe(303);
  const back = new URL(res.location ?? '');
  const code = back.searchParams.get('code') ?? '';
  const tokens = await tokenRequest(origin, {
    grant_type: 'authorization_code',
    code,
    client_id: client.client_id,
    redirect_uri: redirect,
    code_verifier: verifier,
    resource,
  });
  return { client, browser, email, code, verifier, back, tokens };
}

async function mcpStatus(token: string) {
  const res = await fetch(`${origin}/mcp`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
  });
  return { status: res.status, wwwAuthenticate: res.headers.get('www-authenticate') ?? '' };
}

describe('resource server /mcp', () => {
  it('A1: no token gets 401 naming the protected resource metadata and the scope', async () => {
    const res = await fetch(`${origin}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBe(401);
    const header = res.headers.get('www-authenticate') ?? '';
    expect(header).toMatch(/^Bearer /);
    expect(header).toContain(`resource_metadata="${origin}/.well-known/oauth-protected-resource/mcp"`);
    expect(header).toContain('scope="mcp"');
  });

  it('A2: protected resource metadata at both paths names /mcp exactly and our authorization server', async () => {
    for (const path of [
      '/.well-known/oauth-protected-resource',
      '/.well-known/oauth-protected-resource/mcp',
    ]) {
      const res = await fetch(`${origin}${path}`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as { resource: string; authorization_servers: string[] };
      expect(body.resource).toBe(resource);
      expect(body.authorization_servers).toEqual([origin]);
    }
  });

  it('A3: forged and expired access tokens get 401 invalid_token', async () => {
    const forged = `dmo_at_${Buffer.alloc(32, 7).toString('base64url')}`;
    const f = await mcpStatus(forged);
    expect(f.status).toBe(401);
    expect(f.wwwAuthenticate).toContain('error="invalid_token"');
    expect(f.wwwAuthenticate).toContain('resource_metadata=');

    const { tokens } = await fullFlow();
    const access = String(tokens.json.access_token);
    expect((await mcpStatus(access)).status).toBe(200);
    clock.advance(60 * 60 * 1000 + 1000);
    try {
      expect((await mcpStatus(access)).status).toBe(401);
    } finally {
      clock.advance(-(60 * 60 * 1000 + 1000));
    }
  });

  it('A4: a token bound to another resource is refused', async () => {
    const { tokens } = await fullFlow();
    const access = String(tokens.json.access_token);
    expect((await mcpStatus(access)).status).toBe(200);
    // The same token, rebound in the database to another audience (as if issued for another server).
    const { hashSecret } = await import('../../mcp/auth/secrets.ts');
    await server.db.prisma.oAuthToken.update({
      where: { tokenHash: hashSecret(access) },
      data: { resource: 'https://other.example/mcp' },
    });
    expect((await mcpStatus(access)).status).toBe(401);
  });

  it('A6: an access token in the query string is not accepted', async () => {
    const { tokens } = await fullFlow();
    const res = await fetch(`${origin}/mcp?access_token=${tokens.json.access_token}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
    });
    expect(res.status).toBe(400);
  });

  it("A7: an OAuth token acts as its own user only: another tenant's repo is not found", async () => {
    const bob = await server.newUser(`bob${++seq}@example.com`);
    const bobClient = await connectClient(`${origin}/mcp`, bob.key);
    const made = await bobClient.callTool({ name: 'create_repo', arguments: { name: 'secret-app' } });
    expect(made.isError).toBeFalsy();
    await bobClient.close();

    const { tokens, email } = await fullFlow();
    const client = await connectClient(`${origin}/mcp`, String(tokens.json.access_token));
    const who = (await client.callTool({ name: 'whoami', arguments: {} })) as {
      structuredContent?: { email?: string };
    };
    expect(who.structuredContent?.email).toBe(email);
    const theirs = await client.callTool({ name: 'get_git_token', arguments: { name: 'secret-app' } });
    expect(theirs.isError).toBe(true);
    expect(JSON.stringify(theirs.content)).toMatch(/not found/i);
    await client.close();
  });

  it('A8: a token with quotes cannot inject into the WWW-Authenticate header', async () => {
    const res = await fetch(`${origin}/mcp`, {
      method: 'POST',
      headers: { authorization: 'Bearer dmo_at_x", error="evil', 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBe(401);
    const header = res.headers.get('www-authenticate') ?? '';
    expect(header).not.toContain('evil');
    expect(header.match(/error=/g)).toHaveLength(1);
  });

  it('accepts API keys and access tokens alike', async () => {
    const { key } = await server.newUser(`keyed${++seq}@example.com`);
    expect((await mcpStatus(key)).status).toBe(200);
    const { tokens } = await fullFlow();
    expect((await mcpStatus(String(tokens.json.access_token))).status).toBe(200);
  });
});

describe('authorization server', () => {
  it('B9: metadata has the exact issuer, the endpoints, code only and S256 only', async () => {
    const res = await fetch(`${origin}/.well-known/oauth-authorization-server`);
    expect(res.status).toBe(200);
    const m = (await res.json()) as Record<string, unknown>;
    expect(m.issuer).toBe(origin);
    expect(m.authorization_endpoint).toBe(`${origin}/authorize`);
    expect(m.token_endpoint).toBe(`${origin}/token`);
    expect(m.registration_endpoint).toBe(`${origin}/register`);
    expect(m.revocation_endpoint).toBe(`${origin}/revoke`);
    expect(m.response_types_supported).toEqual(['code']);
    expect(m.code_challenge_methods_supported).toEqual(['S256']);
    expect(m.client_id_metadata_document_supported).toBe(true);
  });

  it('B10: PKCE is required, S256 only, and the verifier must match', async () => {
    const client = await registerClient(origin, [REDIRECT]);
    const { browser } = await signedInBrowser();
    for (const [challenge, method] of [
      [undefined, undefined],
      [pkce().challenge, 'plain'],
      [pkce().challenge, undefined],
    ] as const) {
      const res = await browser.request(
        authorizeUrl(origin, {
          clientId: client.client_id,
          redirectUri: REDIRECT,
          challenge,
          method,
          state: 's',
        }),
      );
      expect(res.status).toBe(303);
      const back = new URL(res.location ?? '');
      expect(back.searchParams.get('error')).toBe('invalid_request');
      expect(back.searchParams.get('code')).toBeNull();
    }
    const { challenge } = pkce();
    const res = await consent(
      browser,
      authorizeUrl(origin, { clientId: client.client_id, redirectUri: REDIRECT, challenge, method: 'S256' }),
    );
    const code = new URL(res.location ?? '').searchParams.get('code') ?? '';
    const noVerifier = await tokenRequest(origin, {
      grant_type: 'authorization_code',
      code,
      client_id: client.client_id,
      redirect_uri: REDIRECT,
    });
    expect(noVerifier.status).toBe(400);
    expect(noVerifier.json.error).toBe('invalid_request');
    const wrong = await tokenRequest(origin, {
      grant_type: 'authorization_code',
      code,
      client_id: client.client_id,
      redirect_uri: REDIRECT,
      code_verifier: pkce().verifier,
    });
    expect(wrong.status).toBe(400);
    expect(wrong.json.error).toBe('invalid_grant');
    expect(wrong.json.access_token).toBeUndefined();
  });

  it('B11: redirect URIs match exactly (only a loopback port may vary); a mismatch is an error page, never a redirect', async () => {
    const client = await registerClient(origin, [REDIRECT, 'https://app.example/cb']);
    const { browser } = await signedInBrowser();
    const { challenge } = pkce();
    const bad = [
      'http://localhost:49152/callback', // localhost is not 127.0.0.1
      'http://127.0.0.1:49152/callback/extra',
      'http://127.0.0.1:49152/callback?x=1',
      'https://app.example/cb2',
      'https://app.example:444/cb', // a port varies on loopback only
      'https://evil.example/cb',
    ];
    for (const redirectUri of bad) {
      const res = await browser.request(
        authorizeUrl(origin, { clientId: client.client_id, redirectUri, challenge, method: 'S256' }),
      );
      expect(res.status, redirectUri).toBe(400);
      expect(res.location).toBeUndefined();
    }
    const otherPort = 'http://127.0.0.1:50999/callback';
    const ok = await consent(
      browser,
      authorizeUrl(origin, { clientId: client.client_id, redirectUri: otherPort, challenge, method: 'S256' }),
    );
    expect(ok.status).toBe(303);
    expect(ok.location?.startsWith(`${otherPort}?code=`)).toBe(true);
    const unknown = await browser.request(
      authorizeUrl(origin, { clientId: 'dmc_nope', redirectUri: REDIRECT, challenge, method: 'S256' }),
    );
    expect(unknown.status).toBe(400);
    expect(unknown.location).toBeUndefined();
  });

  it('B12: a code used twice is refused, and the tokens of its first use are revoked', async () => {
    const { client, code, verifier, tokens } = await fullFlow();
    expect(tokens.status).toBe(200);
    const access = String(tokens.json.access_token);
    expect((await mcpStatus(access)).status).toBe(200);
    const again = await tokenRequest(origin, {
      grant_type: 'authorization_code',
      code,
      client_id: client.client_id,
      redirect_uri: REDIRECT,
      code_verifier: verifier,
      resource,
    });
    expect(again.status).toBe(400);
    expect(again.json.error).toBe('invalid_grant');
    expect((await mcpStatus(access)).status).toBe(401);
    const refreshed = await tokenRequest(origin, {
      grant_type: 'refresh_token',
      refresh_token: String(tokens.json.refresh_token),
      client_id: client.client_id,
    });
    expect(refreshed.json.error).toBe('invalid_grant');
  });

  it('B13: a code older than 10 minutes is refused; one just younger works', async () => {
    const client = await registerClient(origin, [REDIRECT]);
    const { browser } = await signedInBrowser();
    const codes: { code: string; verifier: string }[] = [];
    for (let i = 0; i < 2; i++) {
      const { verifier, challenge } = pkce();
      const res = await consent(
        browser,
        authorizeUrl(origin, {
          clientId: client.client_id,
          redirectUri: REDIRECT,
          challenge,
          method: 'S256',
        }),
      );
      codes.push({ code: new URL(res.location ?? '').searchParams.get('code') ?? '', verifier });
    }
    const exchange = (c: { code: string; verifier: string }) =>
      tokenRequest(origin, {
        grant_type: 'authorization_code',
        code: c.code,
        client_id: client.client_id,
        redirect_uri: REDIRECT,
        code_verifier: c.verifier,
      });
    clock.advance(10 * 60 * 1000 - 2000);
    try {
      expect((await exchange(codes[0] as { code: string; verifier: string })).status).toBe(200);
      clock.advance(3000);
      const late = await exchange(codes[1] as { code: string; verifier: string });
      expect(late.status).toBe(400);
      expect(late.json.error).toBe('invalid_grant');
    } finally {
      clock.advance(-(10 * 60 * 1000 + 1000));
    }
  });

  it('B14: the response echoes state and iss; the token response is JSON and not cached', async () => {
    const { back, tokens } = await fullFlow();
    expect(back.searchParams.get('state')).toBe('st-1');
    expect(back.searchParams.get('iss')).toBe(origin);
    expect(tokens.status).toBe(200);
    expect(tokens.headers.get('content-type')).toMatch(/^application\/json/);
    expect(tokens.headers.get('cache-control')).toBe('no-store');
    expect(tokens.json.token_type).toBe('Bearer');
    expect(tokens.json.expires_in).toBe(3600);
    expect(String(tokens.json.access_token)).toMatch(/^dmo_at_[A-Za-z0-9_-]{43}$/);
    // Errors carry state and iss too.
    const client = await registerClient(origin, [REDIRECT]);
    const { browser } = await signedInBrowser();
    const denied = await consent(
      browser,
      authorizeUrl(origin, {
        clientId: client.client_id,
        redirectUri: REDIRECT,
        challenge: pkce().challenge,
        method: 'S256',
        state: 'xyz',
      }),
      'deny',
    );
    const d = new URL(denied.location ?? '');
    expect([d.searchParams.get('error'), d.searchParams.get('state'), d.searchParams.get('iss')]).toEqual([
      'access_denied',
      'xyz',
      origin,
    ]);
  });

  it('B15: the resource is bound at /authorize and /token; another one is invalid_target', async () => {
    const client = await registerClient(origin, [REDIRECT]);
    const { browser } = await signedInBrowser();
    const other = await browser.request(
      authorizeUrl(origin, {
        clientId: client.client_id,
        redirectUri: REDIRECT,
        challenge: pkce().challenge,
        method: 'S256',
        resource: 'https://other.example/mcp',
      }),
    );
    expect(new URL(other.location ?? '').searchParams.get('error')).toBe('invalid_target');
    const { verifier, challenge } = pkce();
    const res = await consent(
      browser,
      authorizeUrl(origin, {
        clientId: client.client_id,
        redirectUri: REDIRECT,
        challenge,
        method: 'S256',
        resource,
      }),
    );
    const code = new URL(res.location ?? '').searchParams.get('code') ?? '';
    const wrong = await tokenRequest(origin, {
      grant_type: 'authorization_code',
      code,
      client_id: client.client_id,
      redirect_uri: REDIRECT,
      code_verifier: verifier,
      resource: `${origin}/other`,
    });
    expect(wrong.json.error).toBe('invalid_target');
    const { hashSecret } = await import('../../mcp/auth/secrets.ts');
    const { tokens } = await fullFlow();
    const row = await server.db.prisma.oAuthToken.findUniqueOrThrow({
      where: { tokenHash: hashSecret(String(tokens.json.access_token)) },
    });
    expect(row.resource).toBe(resource);
  });

  it('B16: refresh tokens rotate; reusing one revokes the grant; the grant has an absolute expiry', async () => {
    const { client, tokens } = await fullFlow();
    const first = String(tokens.json.refresh_token);
    const r1 = await tokenRequest(origin, {
      grant_type: 'refresh_token',
      refresh_token: first,
      client_id: client.client_id,
      resource,
    });
    expect(r1.status).toBe(200);
    expect(r1.json.refresh_token).not.toBe(first);
    expect(r1.json.access_token).not.toBe(tokens.json.access_token);
    const newAccess = String(r1.json.access_token);
    expect((await mcpStatus(newAccess)).status).toBe(200);
    // The rotated-out access token ends with its pair.
    expect((await mcpStatus(String(tokens.json.access_token))).status).toBe(401);
    const reuse = await tokenRequest(origin, {
      grant_type: 'refresh_token',
      refresh_token: first,
      client_id: client.client_id,
    });
    expect(reuse.json.error).toBe('invalid_grant');
    expect((await mcpStatus(newAccess)).status).toBe(401);
    const afterReuse = await tokenRequest(origin, {
      grant_type: 'refresh_token',
      refresh_token: String(r1.json.refresh_token),
      client_id: client.client_id,
    });
    expect(afterReuse.json.error).toBe('invalid_grant');

    const second = await fullFlow();
    clock.advance(91 * 24 * 60 * 60 * 1000);
    try {
      const late = await tokenRequest(origin, {
        grant_type: 'refresh_token',
        refresh_token: String(second.tokens.json.refresh_token),
        client_id: second.client.client_id,
      });
      expect(late.json.error).toBe('invalid_grant');
    } finally {
      clock.advance(-91 * 24 * 60 * 60 * 1000);
    }
  });

  it('B16: a refresh token works only for the client it was issued to', async () => {
    const a = await fullFlow();
    const other = await registerClient(origin, [REDIRECT]);
    const stolen = await tokenRequest(origin, {
      grant_type: 'refresh_token',
      refresh_token: String(a.tokens.json.refresh_token),
      client_id: other.client_id,
    });
    expect(stolen.json.error).toBe('invalid_grant');
  });

  it('B17: the password grant and the implicit flow are unsupported', async () => {
    const client = await registerClient(origin, [REDIRECT]);
    const pw = await tokenRequest(origin, {
      grant_type: 'password',
      username: 'a',
      password: 'b',
      client_id: client.client_id,
    });
    expect(pw.status).toBe(400);
    expect(pw.json.error).toBe('unsupported_grant_type');
    const { browser } = await signedInBrowser();
    const implicit = await browser.request(
      authorizeUrl(origin, {
        clientId: client.client_id,
        redirectUri: REDIRECT,
        challenge: pkce().challenge,
        method: 'S256',
        responseType: 'token',
      }),
    );
    expect(new URL(implicit.location ?? '').searchParams.get('error')).toBe('unsupported_response_type');
  });

  it('revocation (RFC 7009): a revoked access token is refused on its next request; a revoked refresh token ends the grant', async () => {
    const { client, tokens } = await fullFlow();
    const access = String(tokens.json.access_token);
    expect((await mcpStatus(access)).status).toBe(200);
    const revoke = (token: string) =>
      fetch(`${origin}/revoke`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token, client_id: client.client_id }),
      });
    expect((await revoke(access)).status).toBe(200);
    expect((await mcpStatus(access)).status).toBe(401);
    expect((await revoke('dmo_at_unknown')).status).toBe(200);
    expect((await revoke(String(tokens.json.refresh_token))).status).toBe(200);
    const refresh = await tokenRequest(origin, {
      grant_type: 'refresh_token',
      refresh_token: String(tokens.json.refresh_token),
      client_id: client.client_id,
    });
    expect(refresh.json.error).toBe('invalid_grant');
  });

  it('the database keeps only hashes of codes and tokens', async () => {
    const { tokens, code } = await fullFlow();
    const dump = JSON.stringify([
      await server.db.prisma.oAuthToken.findMany(),
      await server.db.prisma.oAuthCode.findMany(),
    ]);
    expect(dump).not.toContain(String(tokens.json.access_token).slice(7));
    expect(dump).not.toContain(String(tokens.json.refresh_token).slice(7));
    expect(dump).not.toContain(code.slice(7));
  });
});

describe('dynamic client registration', () => {
  it('B18: https or loopback redirect URIs only; public clients get no secret', async () => {
    for (const uri of [
      'http://app.example/cb',
      'javascript:alert(1)',
      'https://app.example/cb#frag',
      'not a url',
      'http://10.0.0.1/cb',
    ]) {
      const res = await fetch(`${origin}/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ redirect_uris: [uri] }),
      });
      expect(res.status, uri).toBe(400);
      expect(((await res.json()) as { error: string }).error).toBe('invalid_redirect_uri');
    }
    const res = await fetch(`${origin}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        redirect_uris: ['https://app.example/cb', 'http://localhost/cb'],
        token_endpoint_auth_method: 'client_secret_basic',
      }),
    });
    expect(res.status).toBe(201);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body.client_secret).toBeUndefined();
    expect(body.token_endpoint_auth_method).toBe('none');
    const many = await fetch(`${origin}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        redirect_uris: Array.from({ length: 11 }, (_, i) => `https://app.example/${i}`),
      }),
    });
    expect(many.status).toBe(400);
  });

  it('B18: registrations are capped per address and hour', async () => {
    const capped = await startMcpTestServer({
      oauth: { registrationLimits: { perAddressPerHour: 3, perHour: 100 } },
    });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) {
        const res = await fetch(`${capped.origin}/register`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ redirect_uris: [REDIRECT] }),
        });
        statuses.push(res.status);
      }
      expect(statuses).toEqual([201, 201, 201, 429, 429]);
    } finally {
      await capped.close();
    }
  });
});

describe('sign-in and consent pages', () => {
  it('B20: pages are not cacheable nor frameable; cookies are __Host-, Secure, HttpOnly, SameSite=Lax', async () => {
    const browser = new PageClient(origin);
    const page = await browser.request('/sign-in');
    expect(page.status).toBe(200);
    expect(page.headers.get('cache-control')).toBe('no-store');
    expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    const { code } = await createLoginCode(server.db.prisma, `cookie${++seq}@example.com`);
    const res = await signIn(browser, code);
    const cookies = [...page.setCookies, ...res.setCookies];
    expect(cookies.map((c) => c.split('=')[0]).sort()).toEqual(['__Host-dmcp_csrf', '__Host-dmcp_session']);
    for (const c of cookies) {
      expect(c).toMatch(/; Path=\//);
      expect(c).toMatch(/; Secure/);
      expect(c).toMatch(/; HttpOnly/);
      expect(c).toMatch(/; SameSite=Lax/);
      expect(c).not.toMatch(/Domain=/i);
    }
  });

  it('B20: consent needs a CSRF token from this browser and session, younger than 10 minutes', async () => {
    const client = await registerClient(origin, [REDIRECT]);
    const { browser } = await signedInBrowser();
    const url = authorizeUrl(origin, {
      clientId: client.client_id,
      redirectUri: REDIRECT,
      challenge: pkce().challenge,
      method: 'S256',
      state: 's',
    });
    const page = await browser.request(url);
    expect(page.status).toBe(200);
    expect(page.body).toContain('Test client');
    expect(page.body).toContain('127.0.0.1:49152');
    const { formFields } = await import('../support/oauth.ts');
    const fields = formFields(page.body, '/authorize');
    // No token, a forged token, another browser's token: refused, no code.
    for (const csrf of [undefined, 'x.y', `${Date.now().toString(36)}.AAAA`]) {
      const form = { ...fields, decision: 'allow' } as Record<string, string>;
      if (csrf === undefined) delete form.csrf;
      else form.csrf = csrf;
      const res = await browser.request('/authorize', { form });
      expect(res.status).toBe(403);
      expect(res.location).toBeUndefined();
    }
    const other = await signedInBrowser();
    const stolen = await other.browser.request('/authorize', { form: { ...fields, decision: 'allow' } });
    expect(stolen.status).toBe(403);
    clock.advance(10 * 60 * 1000 + 1000);
    try {
      const late = await browser.request('/authorize', { form: { ...fields, decision: 'allow' } });
      expect(late.status).toBe(403);
    } finally {
      clock.advance(-(10 * 60 * 1000 + 1000));
    }
    const ok = await browser.request('/authorize', { form: { ...fields, decision: 'allow' } });
    expect(ok.status).toBe(303);
    expect(new URL(ok.location ?? '').searchParams.get('code')).toMatch(/^dmo_ac_/);
  });

  it('B20: every client asks for consent; without a session /authorize sends the browser to sign in', async () => {
    const client = await registerClient(origin, [REDIRECT]);
    const anonymous = new PageClient(origin);
    const url = authorizeUrl(origin, {
      clientId: client.client_id,
      redirectUri: REDIRECT,
      challenge: pkce().challenge,
      method: 'S256',
    });
    const res = await anonymous.request(url);
    expect(res.status).toBe(303);
    expect(res.location).toBe(`/sign-in?return_to=${encodeURIComponent(url)}`);
    const { browser } = await signedInBrowser();
    const first = await consent(browser, url);
    expect(first.status).toBe(303);
    const again = await browser.request(
      authorizeUrl(origin, {
        clientId: client.client_id,
        redirectUri: REDIRECT,
        challenge: pkce().challenge,
        method: 'S256',
      }),
    );
    expect(again.status).toBe(200);
    expect(again.body).toContain('Allow');
  });

  it('login codes work once and for 10 minutes', async () => {
    const { code } = await createLoginCode(server.db.prisma, `once${++seq}@example.com`);
    expect(code).toMatch(/^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$/);
    const a = new PageClient(origin);
    expect((await signIn(a, code.toLowerCase())).status).toBe(303);
    const b = new PageClient(origin);
    const reused = await signIn(b, code);
    expect(reused.status).toBe(401);
    expect(b.cookies.has('__Host-dmcp_session')).toBe(false);
    const { code: late } = await createLoginCode(server.db.prisma, `late${seq}@example.com`);
    clock.advance(10 * 60 * 1000 + 1000);
    try {
      expect((await signIn(new PageClient(origin), late)).status).toBe(401);
    } finally {
      clock.advance(-(10 * 60 * 1000 + 1000));
    }
  });

  it('sign-in returns only to our own pages', async () => {
    const { code } = await createLoginCode(server.db.prisma, `ret${++seq}@example.com`);
    const res = await signIn(new PageClient(origin), code, 'https://evil.example/');
    expect(res.location).toBe('/account/keys');
    const { code: c2 } = await createLoginCode(server.db.prisma, `ret2${seq}@example.com`);
    const res2 = await signIn(new PageClient(origin), c2, '//evil.example/authorize?');
    expect(res2.location).toBe('/account/keys');
  });
});
