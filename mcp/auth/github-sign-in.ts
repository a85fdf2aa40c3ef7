import { randomBytes } from 'node:crypto';
import type { Request, Response } from 'express';
import { html } from './html.ts';
import { SignInRefused, userForIdentity } from './identities.ts';
import { mac, safeEqual } from './secrets.ts';
import { readCookie } from './sessions.ts';
import { type SignInMethod, safeReturnTo, signInPage } from './sign-in.ts';

export type GitHubSignInOptions = {
  clientId: string;
  clientSecret: string;
  /** https://github.com (or a fake's URL in tests). */
  webUrl: string;
  /** https://api.github.com (or a fake's URL in tests). */
  apiUrl: string;
};

const STATE_COOKIE = '__Host-dmcp_github';
const STATE_TTL_MS = 10 * 60 * 1000;
const GITHUB_TIMEOUT_MS = 10_000;

class GitHubError extends Error {}

async function github<T>(url: string, init: RequestInit): Promise<T> {
  const res = await fetch(url, {
    ...init,
    redirect: 'error',
    signal: AbortSignal.timeout(GITHUB_TIMEOUT_MS),
  }).catch(() => {
    throw new GitHubError('GitHub could not be reached');
  });
  if (!res.ok) throw new GitHubError(`GitHub answered HTTP ${res.status}`);
  return (await res.json()) as T;
}

/**
 * Sign-in with GitHub (the OAuth web flow). The `state` is random, tied to this browser by a
 * signed `__Host-` cookie, single use and valid 10 minutes, so a callback cannot be replayed or
 * planted in someone else's browser (login CSRF). The user token GitHub returns is used for two
 * reads (the account and its verified emails) and dropped; the identity is the numeric user id.
 */
export function githubSignIn(options: GitHubSignInOptions): SignInMethod {
  const webOrigin = new URL(options.webUrl).origin;
  return {
    id: 'github',
    form: ({ returnTo, csrf }) =>
      html`<form method="post" action="/sign-in/github"><input type="hidden" name="return_to" value="${returnTo}"><input type="hidden" name="csrf" value="${csrf}"><button type="submit">Sign in with GitHub</button></form>`,
    // Browsers apply form-action to the redirect that answers the form.
    csp: { formTargets: [webOrigin] },
    routes: (router, ctx, done) => {
      const callbackUrl = `${ctx.issuer}/sign-in/github/callback`;
      // The client secret is a server secret already: it keys the state cookie's signature.
      const sign = (value: string) => mac(options.clientSecret, `github-state:${value}`);

      router.post('/', (req: Request, res: Response) => {
        const body = req.body as Record<string, unknown>;
        if (!ctx.csrf.check(req, body.csrf, 'sign-in'))
          return signInPage(
            ctx,
            req,
            res,
            403,
            'This form expired or did not come from this site. Try again.',
          );
        const state = randomBytes(32).toString('base64url');
        const payload = `${state}.${ctx.now().getTime().toString(36)}.${Buffer.from(safeReturnTo(body.return_to)).toString('base64url')}`;
        res.append(
          'set-cookie',
          `${STATE_COOKIE}=${payload}.${sign(payload)}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=${STATE_TTL_MS / 1000}`,
        );
        const url = new URL(`${options.webUrl}/login/oauth/authorize`);
        url.searchParams.set('client_id', options.clientId);
        url.searchParams.set('redirect_uri', callbackUrl);
        url.searchParams.set('scope', 'read:user user:email');
        url.searchParams.set('state', state);
        url.searchParams.set('allow_signup', 'true');
        res.redirect(303, url.toString());
      });

      router.get('/callback', async (req: Request, res: Response) => {
        const cookie = readCookie(req, STATE_COOKIE) ?? '';
        // Single use: the state cookie goes whatever happens next.
        res.append('set-cookie', `${STATE_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0`);
        const [state, ts, returnTo, signature] = cookie.split('.');
        const fail = (status: number, message: string) => signInPage(ctx, req, res, status, message);
        if (
          !state ||
          !ts ||
          returnTo === undefined ||
          !signature ||
          !safeEqual(signature, sign(`${state}.${ts}.${returnTo}`))
        )
          return fail(400, 'This GitHub sign-in did not start in this browser. Start again.');
        const age = ctx.now().getTime() - Number.parseInt(ts, 36);
        if (!(age >= 0 && age <= STATE_TTL_MS))
          return fail(400, 'This GitHub sign-in took too long. Start again.');
        if (typeof req.query.state !== 'string' || !safeEqual(req.query.state, state))
          return fail(400, 'This GitHub sign-in did not start in this browser. Start again.');
        if (typeof req.query.error === 'string') return fail(401, 'GitHub sign-in was cancelled.');
        const code = typeof req.query.code === 'string' ? req.query.code : '';
        if (!code || code.length > 200) return fail(400, 'GitHub sent no code.');
        try {
          const token = await github<{ access_token?: string; error?: string }>(
            `${options.webUrl}/login/oauth/access_token`,
            {
              method: 'POST',
              headers: { accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded' },
              body: new URLSearchParams({
                client_id: options.clientId,
                client_secret: options.clientSecret,
                code,
                redirect_uri: callbackUrl,
              }),
            },
          );
          if (!token.access_token) return fail(401, 'GitHub did not accept the sign-in. Start again.');
          const headers = {
            accept: 'application/vnd.github+json',
            authorization: `Bearer ${token.access_token}`,
            'x-github-api-version': '2022-11-28',
            'user-agent': 'deploy-mcp',
          };
          const [user, emails] = await Promise.all([
            github<{ id?: unknown; login?: unknown }>(`${options.apiUrl}/user`, { headers }),
            github<{ email?: unknown; primary?: unknown; verified?: unknown }[]>(
              `${options.apiUrl}/user/emails`,
              { headers },
            ),
          ]);
          if (typeof user.id !== 'number' || !Number.isSafeInteger(user.id))
            return fail(502, 'GitHub sent an unexpected answer.');
          const verified = (Array.isArray(emails) ? emails : []).filter(
            (e) => e.verified === true && typeof e.email === 'string',
          );
          const email = (verified.find((e) => e.primary === true) ?? verified[0])?.email as
            | string
            | undefined;
          const userId = await userForIdentity(
            ctx.db,
            {
              provider: 'github',
              subject: String(user.id),
              email,
              emailVerified: email !== undefined,
              login: typeof user.login === 'string' ? user.login.slice(0, 100) : undefined,
            },
            ctx.now(),
          );
          await done(
            req,
            res,
            userId,
            'github',
            safeReturnTo(Buffer.from(returnTo, 'base64url').toString('utf8')),
          );
        } catch (err) {
          if (err instanceof SignInRefused) return fail(403, `Cannot sign you in: ${err.message}.`);
          if (err instanceof GitHubError) return fail(502, `${err.message}. Try again later.`);
          throw err;
        }
      });
    },
  };
}
