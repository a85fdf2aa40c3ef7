// Firebase sign-in against the official Auth emulator (firebase-tools): firebase-admin verifies
// the ID token; the identity is the Firebase uid; a first sign-in creates the account with a
// readable, unique owner name; old sign-ins and unverified addresses are refused; emulator mode
// exists only for demo- projects. One test drives the page's own script in chromium.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../core/config.ts';
import { firebaseSignIn } from '../../mcp/auth/firebase-sign-in.ts';
import { launchChromium, screenshot } from '../support/browser.ts';
import { type FirebaseAuthEmulator, startFirebaseAuthEmulator } from '../support/firebase-emulator.ts';
import { type McpTestServer, startMcpTestServer } from '../support/mcp.ts';
import { formFields, PageClient, TestClock } from '../support/oauth.ts';

let emulator: FirebaseAuthEmulator;
let server: McpTestServer;
let method: ReturnType<typeof firebaseSignIn>;
const clock = new TestClock();
const run = Date.now().toString(36);

beforeAll(async () => {
  emulator = await startFirebaseAuthEmulator();
  method = firebaseSignIn({
    projectId: emulator.projectId,
    apiKey: 'fake-api-key',
    authEmulatorHost: emulator.host,
  });
  server = await startMcpTestServer({ oauth: { now: clock.now, signInMethods: [method] } });
}, 240_000);
afterAll(async () => {
  await server?.close();
  await method?.close();
  await emulator?.stop();
});

/** Posts an ID token the way the sign-in page's script does. */
async function postIdToken(browser: PageClient, idToken: string) {
  const page = await browser.request('/sign-in?return_to=%2Faccount%2Fkeys');
  return browser.request('/sign-in/firebase', {
    form: { ...formFields(page.body, '/sign-in/firebase'), id_token: idToken },
  });
}

async function signInAs(email: string, password = 'correct horse battery') {
  const browser = new PageClient(server.origin);
  const res = await postIdToken(browser, await emulator.signIn(email, password));
  return { browser, res };
}

describe('Firebase sign-in', () => {
  it('a first sign-in creates the account, keyed by the uid, with a readable unique owner name', async () => {
    const first = `ada@${run}.example`;
    const second = `ada@${run}-other.example`;
    const uid = await emulator.createUser(first, 'correct horse battery');
    await emulator.createUser(second, 'correct horse battery');
    const { browser, res } = await signInAs(first);
    expect(res.status).toBe(303);
    expect(res.location).toBe('/account/keys');
    expect((await browser.request('/account/keys')).body).toContain(`Signed in as ${first}`);
    const identity = await server.db.prisma.signInIdentity.findUniqueOrThrow({
      where: { provider_subject: { provider: 'firebase', subject: uid } },
      include: { user: true },
    });
    expect(identity.user.email).toBe(first);
    const owner = identity.user.ownerName ?? '';
    expect(owner).toMatch(/^ada(-\d+)?$/);
    await signInAs(second);
    const other = await server.db.prisma.user.findUniqueOrThrow({ where: { email: second } });
    expect(other.ownerName).not.toBe(owner);
    expect(other.ownerName).toMatch(/^ada-\d+$/);
    // Signing in again reuses the account.
    await signInAs(first);
    expect(await server.db.prisma.user.count({ where: { email: first } })).toBe(1);
  });

  it('the identity is the uid, not the email: a changed address signs in to the same account', async () => {
    const email = `grace@${run}.example`;
    const uid = await emulator.createUser(email, 'correct horse battery');
    await signInAs(email);
    const user = await server.db.prisma.user.findUniqueOrThrow({ where: { email } });
    const changed = `grace.new@${run}.example`;
    const res = await fetch(
      `http://${emulator.host}/identitytoolkit.googleapis.com/v1/projects/${emulator.projectId}/accounts:update`,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer owner' },
        body: JSON.stringify({ localId: uid, email: changed, emailVerified: true }),
      },
    );
    expect(res.status).toBe(200);
    const { browser } = await signInAs(changed);
    expect((await browser.request('/account/keys')).body).toContain(`Signed in as ${email}`);
    expect(await server.db.prisma.user.count({ where: { email: changed } })).toBe(0);
    expect((await server.db.prisma.signInIdentity.findFirstOrThrow({ where: { subject: uid } })).userId).toBe(
      user.id,
    );
  });

  it('an unverified address neither creates nor takes over an account', async () => {
    const victim = `victim@${run}.example`;
    await server.newUser(victim);
    await emulator.createUser(victim, 'attacker password', false);
    const { browser, res } = await signInAs(victim, 'attacker password');
    expect(res.status).toBe(403);
    expect(res.body).toContain('no verified email address');
    expect(browser.cookies.has('__Host-dmcp_session')).toBe(false);
    expect(await server.db.prisma.signInIdentity.count({ where: { email: victim } })).toBe(0);
  });

  it('refuses a garbage token, a missing CSRF token and a sign-in older than 10 minutes', async () => {
    const email = `late@${run}.example`;
    await emulator.createUser(email, 'correct horse battery');
    const garbage = await postIdToken(new PageClient(server.origin), 'not.a.token');
    expect(garbage.status).toBe(401);
    const token = await emulator.signIn(email, 'correct horse battery');
    const noCsrf = await new PageClient(server.origin).request('/sign-in/firebase', {
      form: { id_token: token },
    });
    expect(noCsrf.status).toBe(403);
    clock.advance(11 * 60 * 1000);
    try {
      const browser = new PageClient(server.origin);
      const late = await postIdToken(browser, token);
      expect(late.status).toBe(401);
      expect(late.body).toContain('too old');
    } finally {
      clock.advance(-11 * 60 * 1000);
    }
    expect((await postIdToken(new PageClient(server.origin), token)).status).toBe(303);
  });

  it('signs in from the page in chromium: the password goes to Firebase, never to us', async () => {
    const email = `browser@${run}.example`;
    await emulator.createUser(email, 'correct horse battery');
    const chromium = await launchChromium();
    try {
      const page = await chromium.newPage();
      const posted: string[] = [];
      page.on('request', (r) => {
        if (r.url().startsWith(server.origin) && r.method() === 'POST') posted.push(r.postData() ?? '');
      });
      await page.goto(`${server.origin}/sign-in?return_to=%2Faccount%2Fkeys`);
      await page.getByLabel('Email').fill(email);
      await page.getByLabel('Password').fill('correct horse battery');
      await screenshot(page, 'firebase-1-sign-in');
      await page.getByRole('button', { name: 'Sign in with Firebase' }).click();
      await page.waitForURL(/\/account\/keys$/, { timeout: 60_000 });
      expect((await page.locator('p.muted').first().textContent()) ?? '').toContain(email);
      await screenshot(page, 'firebase-2-signed-in');
      expect(posted).toHaveLength(1);
      expect(posted[0]).toContain('id_token=');
      expect(posted.join('')).not.toContain('horse');
    } finally {
      await chromium.close();
    }
  });
});

describe('emulator mode', () => {
  it('is refused unless the project is a demo- one', () => {
    const base = { DEPLOY_MCP_FIREBASE_API_KEY: 'k', DEPLOY_MCP_FIREBASE_AUTH_EMULATOR: '127.0.0.1:9099' };
    expect(() => loadConfig({ ...base, DEPLOY_MCP_FIREBASE_PROJECT_ID: 'prod-app' })).toThrow(ConfigError);
    expect(() => loadConfig({ ...base, DEPLOY_MCP_FIREBASE_PROJECT_ID: 'prod-app' })).toThrow(/demo-/);
    expect(
      loadConfig({ ...base, DEPLOY_MCP_FIREBASE_PROJECT_ID: 'demo-app' }).signIn.firebase?.authEmulatorHost,
    ).toBe('127.0.0.1:9099');
    expect(() =>
      firebaseSignIn({ projectId: 'prod-app', apiKey: 'k', authEmulatorHost: '127.0.0.1:9099' }),
    ).toThrow(/demo-/);
  });

  it('a stray FIREBASE_AUTH_EMULATOR_HOST does not switch verification off: unsigned tokens are refused', async () => {
    const email = `stray@${run}.example`;
    await emulator.createUser(email, 'correct horse battery');
    const unsigned = await emulator.signIn(email, 'correct horse battery');
    process.env.FIREBASE_AUTH_EMULATOR_HOST = emulator.host;
    // Same project, not configured for the emulator.
    const strict = firebaseSignIn({
      projectId: emulator.projectId,
      apiKey: 'fake-api-key',
      authEmulatorHost: undefined,
    });
    const strictServer = await startMcpTestServer({ oauth: { signInMethods: [strict] } });
    try {
      expect(process.env.FIREBASE_AUTH_EMULATOR_HOST).toBeUndefined();
      const browser = new PageClient(strictServer.origin);
      const page = await browser.request('/sign-in');
      const res = await browser.request('/sign-in/firebase', {
        form: { ...formFields(page.body, '/sign-in/firebase'), id_token: unsigned },
      });
      expect(res.status).toBe(401);
      expect(browser.cookies.has('__Host-dmcp_session')).toBe(false);
    } finally {
      await strictServer.close();
      // The shared app for this project stays; put the emulator setting back for the other tests.
      process.env.FIREBASE_AUTH_EMULATOR_HOST = emulator.host;
    }
  });
});
