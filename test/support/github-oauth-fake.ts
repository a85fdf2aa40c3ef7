import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** A GitHub account as the fake serves it. */
export type FakeGitHubUser = {
  id: number;
  login: string;
  emails: { email: string; primary: boolean; verified: boolean }[];
};

/**
 * A local fake of GitHub's OAuth web flow and the two API reads sign-in makes, speaking GitHub's
 * HTTP API: GET /login/oauth/authorize (the user "approves" at once: a 302 back with code and
 * state), POST /login/oauth/access_token (form, JSON answer with Accept: application/json),
 * GET /user and GET /user/emails with the user token. Codes are single use and bound to the
 * client and redirect URI, as on GitHub.
 */
export async function startGitHubOAuthFake(client: { clientId: string; clientSecret: string }) {
  const codes = new Map<string, { user: FakeGitHubUser; redirectUri: string }>();
  const tokens = new Map<string, FakeGitHubUser>();
  const requests: { method: string; path: string; body: string }[] = [];
  const state = { user: undefined as FakeGitHubUser | undefined };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://fake');
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString();
    });
    req.on('end', () => {
      requests.push({ method: req.method ?? '', path: url.pathname, body });
      const json = (status: number, value: unknown) =>
        res
          .writeHead(status, { 'content-type': 'application/json; charset=utf-8' })
          .end(JSON.stringify(value));
      if (req.method === 'GET' && url.pathname === '/login/oauth/authorize') {
        if (url.searchParams.get('client_id') !== client.clientId || !state.user)
          return res.writeHead(404).end('Not Found');
        const code = randomBytes(10).toString('hex');
        const redirectUri = url.searchParams.get('redirect_uri') ?? '';
        codes.set(code, { user: state.user, redirectUri });
        const back = new URL(redirectUri);
        back.searchParams.set('code', code);
        back.searchParams.set('state', url.searchParams.get('state') ?? '');
        return res.writeHead(302, { location: back.toString() }).end();
      }
      if (req.method === 'POST' && url.pathname === '/login/oauth/access_token') {
        const form = new URLSearchParams(body);
        const grant = codes.get(form.get('code') ?? '');
        codes.delete(form.get('code') ?? '');
        if (form.get('client_id') !== client.clientId || form.get('client_secret') !== client.clientSecret)
          return json(200, { error: 'incorrect_client_credentials' });
        if (!grant || grant.redirectUri !== form.get('redirect_uri'))
          return json(200, { error: 'bad_verification_code' });
        const token = `gho_${randomBytes(18).toString('base64url')}`;
        tokens.set(token, grant.user);
        return json(200, { access_token: token, token_type: 'bearer', scope: 'read:user,user:email' });
      }
      const user = tokens.get((req.headers.authorization ?? '').replace(/^(Bearer|token) /i, ''));
      if (req.method === 'GET' && (url.pathname === '/user' || url.pathname === '/user/emails')) {
        if (!user) return json(401, { message: 'Bad credentials' });
        if (url.pathname === '/user')
          return json(200, { id: user.id, login: user.login, type: 'User', email: null });
        return json(
          200,
          user.emails.map((e) => ({ ...e, visibility: e.primary ? 'public' : null })),
        );
      }
      return json(404, { message: 'Not Found' });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    requests,
    /** The account the next authorization signs in as. */
    signInAs(user: FakeGitHubUser) {
      state.user = user;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
