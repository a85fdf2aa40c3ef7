// GitHub sign-in (OAuth web flow) against a local fake of GitHub's endpoints: the identity is the
// numeric user id; a first sign-in creates the account; state is tied to the browser, single use
// and 10 minutes; no verified email, no account. One test runs the flow in chromium.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { githubSignIn } from '../../mcp/auth/github-sign-in.ts';
import { launchChromium, screenshot } from '../support/browser.ts';
import { type FakeGitHubUser, startGitHubOAuthFake } from '../support/github-oauth-fake.ts';
import { type McpTestServer, startMcpTestServer } from '../support/mcp.ts';
import { formFields, PageClient, TestClock } from '../support/oauth.ts';

const secret = `s3cret-${Date.now().toString(36)}`;
let fake: Awaited<ReturnType<typeof startGitHubOAuthFake>>;
let server: McpTestServer;
const clock = new TestClock();
let nextId = 1000 + Math.floor(Math.random() * 1e6);

beforeAll(async () => {
  fake = await startGitHubOAuthFake({ clientId: 'Iv1.test', clientSecret: secret });
  server = await startMcpTestServer({
    oauth: {
      now: clock.now,
      signInMethods: [
        githubSignIn({ clientId: 'Iv1.test', clientSecret: secret, webUrl: fake.url, apiUrl: fake.url }),
      ],
    },
  });
}, 60_000);
afterAll(async () => {
  await server?.close();
  await fake?.close();
});

function account(login: string, verified = true): FakeGitHubUser {
  return { id: ++nextId, login, emails: [{ email: `${login}@users.example`, primary: true, verified }] };
}

/** Starts the flow in `browser`; returns GitHub's redirect back (the callback URL). */
async function startFlow(browser: PageClient) {
  const page = await browser.request('/sign-in?return_to=%2Faccount%2Fclients');
  const started = await browser.request('/sign-in/github', {
    form: formFields(page.body, '/sign-in/github'),
  });
  expect(started.status).toBe(303);
  expect(started.location?.startsWith(`${fake.url}/login/oauth/authorize?`)).toBe(true);
  expect(started.location).not.toContain(secret);
  const atGitHub = await fetch(started.location ?? '', { redirect: 'manual' });
  expect(atGitHub.status).toBe(302);
  return atGitHub.headers.get('location') ?? '';
}

it('a first sign-in creates the account keyed by the GitHub id; later sign-ins find it even after a rename', async () => {
  const octo = account(`octo${nextId}`);
  fake.signInAs(octo);
  const browser = new PageClient(server.origin);
  const done = await browser.request(await startFlow(browser));
  expect(done.status).toBe(303);
  expect(done.location).toBe('/account/clients');
  expect((await browser.request('/account/keys')).body).toContain(`Signed in as ${octo.login}@users.example`);
  const identity = await server.db.prisma.signInIdentity.findUniqueOrThrow({
    where: { provider_subject: { provider: 'github', subject: String(octo.id) } },
    include: { user: true },
  });
  expect(identity.login).toBe(octo.login);
  expect(identity.user.ownerName).toBe(octo.login.toLowerCase());

  // Renamed, with a new address: still the same account.
  fake.signInAs({
    ...octo,
    login: `${octo.login}-renamed`,
    emails: [{ email: 'new@users.example', primary: true, verified: true }],
  });
  const again = new PageClient(server.origin);
  expect((await again.request(await startFlow(again))).status).toBe(303);
  expect((await again.request('/account/keys')).body).toContain(`Signed in as ${octo.login}@users.example`);
  expect(await server.db.prisma.user.count({ where: { email: 'new@users.example' } })).toBe(0);
  // The user token was used and dropped: nothing of it is stored.
  const tokens = fake.requests.filter((r) => r.path === '/login/oauth/access_token');
  expect(tokens.length).toBeGreaterThanOrEqual(2);
});

it('a callback from another browser, a replayed one or a late one is refused (login CSRF)', async () => {
  fake.signInAs(account(`csrf${nextId}`));
  const victim = new PageClient(server.origin);
  const attacker = new PageClient(server.origin);
  const callback = await startFlow(attacker);
  // Planted in the victim's browser: no matching state cookie.
  const planted = await victim.request(callback);
  expect(planted.status).toBe(400);
  expect(victim.cookies.has('__Host-dmcp_session')).toBe(false);
  // Replayed in the browser that started it: the state was single use.
  const first = await attacker.request(callback);
  expect(first.status).toBe(303);
  const fresh = new PageClient(server.origin);
  const cb = await startFlow(fresh);
  const stateCookie = fresh.cookies.get('__Host-dmcp_github') ?? '';
  expect((await fresh.request(cb)).status).toBe(303);
  fresh.cookies.set('__Host-dmcp_github', stateCookie);
  fresh.cookies.delete('__Host-dmcp_session');
  expect((await fresh.request(cb)).status).toBe(401); // the code was spent at GitHub too
  // A forged state cookie (bad signature) and a wrong state are refused.
  const forged = new PageClient(server.origin);
  const cb2 = await startFlow(forged);
  forged.cookies.set('__Host-dmcp_github', `${forged.cookies.get('__Host-dmcp_github')?.slice(0, -4)}AAAA`);
  expect((await forged.request(cb2)).status).toBe(400);
  const wrong = new PageClient(server.origin);
  const cb3 = new URL(await startFlow(wrong));
  cb3.searchParams.set('state', 'x'.repeat(43));
  expect((await wrong.request(cb3.toString())).status).toBe(400);
  // Older than 10 minutes.
  const slow = new PageClient(server.origin);
  const cb4 = await startFlow(slow);
  clock.advance(10 * 60 * 1000 + 1000);
  try {
    expect((await slow.request(cb4)).status).toBe(400);
  } finally {
    clock.advance(-(10 * 60 * 1000 + 1000));
  }
});

it('an account without a verified email is refused', async () => {
  fake.signInAs(account(`unverified${nextId}`, false));
  const browser = new PageClient(server.origin);
  const res = await browser.request(await startFlow(browser));
  expect(res.status).toBe(403);
  expect(res.body).toContain('no verified email address');
  expect(browser.cookies.has('__Host-dmcp_session')).toBe(false);
});

it('signs in from the page in chromium (form-action lets the redirect to GitHub through)', async () => {
  const user = account(`browser${nextId}`);
  fake.signInAs(user);
  const chromium = await launchChromium();
  try {
    const page = await chromium.newPage();
    await page.goto(`${server.origin}/sign-in?return_to=%2Faccount%2Fkeys`);
    await page.getByRole('button', { name: 'Sign in with GitHub' }).click();
    await page.waitForURL(/\/account\/keys$/, { timeout: 60_000 });
    expect((await page.locator('p.muted').first().textContent()) ?? '').toContain(
      `${user.login}@users.example`,
    );
    await screenshot(page, 'github-signed-in');
  } finally {
    await chromium.close();
  }
});
