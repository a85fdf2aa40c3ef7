import type { App } from 'firebase-admin/app';
import type { Auth, DecodedIdToken } from 'firebase-admin/auth';
import { html, raw } from './html.ts';
import { SignInRefused, userForIdentity } from './identities.ts';
import { type SignInMethod, safeReturnTo, signInPage } from './sign-in.ts';

/** A Firebase sign-in older than this is not accepted (a stolen old ID token is useless). */
export const FIREBASE_MAX_AUTH_AGE_MS = 10 * 60 * 1000;

export type FirebaseSignInOptions = {
  projectId: string;
  /** Web API key: the page signs in with Firebase Auth's REST API directly (the password never reaches us). */
  apiKey: string;
  /** host:port of the Auth emulator; only for demo- projects (config refuses anything else). */
  authEmulatorHost: string | undefined;
};

/**
 * firebase-admin reads FIREBASE_AUTH_EMULATOR_HOST from the environment at every call, and in
 * emulator mode accepts unsigned ID tokens. So the setting is ours alone: set for a demo-
 * project's emulator, removed otherwise (a stray variable must never switch verification off).
 */
function pinEmulatorSetting(options: FirebaseSignInOptions) {
  if (options.authEmulatorHost) {
    if (!options.projectId.startsWith('demo-'))
      throw new Error('the Firebase Auth emulator is allowed only for demo- projects');
    process.env.FIREBASE_AUTH_EMULATOR_HOST = options.authEmulatorHost;
  } else {
    delete process.env.FIREBASE_AUTH_EMULATOR_HOST;
  }
}

/**
 * One app per project and mode: an Auth instance keeps the emulator mode it was created in.
 * firebase-admin is loaded here, with the first sign-in through it, not with the server: it
 * brings google-auth-library and more, which a server without Firebase sign-ins should not hold.
 */
async function firebaseAuth(options: FirebaseSignInOptions): Promise<{ app: App; auth: Auth }> {
  const [{ getApps, initializeApp }, { getAuth }] = await Promise.all([
    import('firebase-admin/app'),
    import('firebase-admin/auth'),
  ]);
  const name = `deploy-mcp-${options.projectId}-${options.authEmulatorHost ? 'emulator' : 'verified'}`;
  const app = getApps().find((a) => a.name === name) ?? initializeApp({ projectId: options.projectId }, name);
  return { app, auth: getAuth(app) };
}

/** Sign-in with Firebase Auth (email and password): the page gets an ID token from Firebase, we verify it. */
export function firebaseSignIn(
  options: FirebaseSignInOptions,
): SignInMethod & { close: () => Promise<void> } {
  pinEmulatorSetting(options);
  let admin: Promise<{ app: App; auth: Auth }> | undefined;
  const firebase = () => {
    admin ??= firebaseAuth(options);
    return admin;
  };
  const authOrigin = options.authEmulatorHost
    ? `http://${options.authEmulatorHost}`
    : 'https://identitytoolkit.googleapis.com';
  const endpoint = `${authOrigin}${options.authEmulatorHost ? '/identitytoolkit.googleapis.com' : ''}/v1/accounts:signInWithPassword?key=${encodeURIComponent(options.apiKey)}`;
  return {
    id: 'firebase',
    // The email and password inputs have no name: the browser never submits them to us.
    form: ({
      returnTo,
      csrf,
    }) => html`<form id="firebase-sign-in"><label for="fb-email">Email</label><input type="text" id="fb-email" autocomplete="username" required>
<label for="fb-password">Password</label><input type="password" id="fb-password" autocomplete="current-password" required>
<button type="submit">Sign in with Firebase</button><p class="error" id="fb-error" role="alert" hidden></p></form>
<form id="firebase-token" method="post" action="/sign-in/firebase"><input type="hidden" name="id_token" value=""><input type="hidden" name="return_to" value="${returnTo}"><input type="hidden" name="csrf" value="${csrf}"></form>`,
    csp: { connectSources: [authOrigin] },
    scripts: (nonce) => html`<script nonce="${nonce}">
(() => {
  const form = document.getElementById('firebase-sign-in');
  const out = document.getElementById('firebase-token');
  const error = document.getElementById('fb-error');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.hidden = true;
    try {
      const res = await fetch(${raw(JSON.stringify(endpoint).replace(/</g, '\\u003c'))}, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: document.getElementById('fb-email').value, password: document.getElementById('fb-password').value, returnSecureToken: true }),
      });
      const body = await res.json();
      if (!res.ok || !body.idToken) throw new Error('Wrong email or password.');
      out.elements.id_token.value = body.idToken;
      out.submit();
    } catch (err) {
      error.textContent = err instanceof Error && err.message === 'Wrong email or password.' ? err.message : 'Firebase sign-in failed; try again.';
      error.hidden = false;
    }
  });
})();
</script>`,
    routes: (router, ctx, done) => {
      router.post('/', async (req, res) => {
        const body = req.body as Record<string, unknown>;
        if (!ctx.csrf.check(req, body.csrf, 'sign-in'))
          return signInPage(
            ctx,
            req,
            res,
            403,
            'This form expired or did not come from this site. Try again.',
          );
        const token = typeof body.id_token === 'string' ? body.id_token : '';
        let decoded: DecodedIdToken;
        try {
          if (!token || token.length > 8192) throw new Error('no token');
          pinEmulatorSetting(options);
          decoded = await (await firebase()).auth.verifyIdToken(token);
        } catch {
          return signInPage(ctx, req, res, 401, 'Firebase did not vouch for that sign-in. Try again.');
        }
        if (ctx.now().getTime() - decoded.auth_time * 1000 > FIREBASE_MAX_AUTH_AGE_MS)
          return signInPage(ctx, req, res, 401, 'That Firebase sign-in is too old. Sign in again.');
        try {
          const userId = await userForIdentity(
            ctx.db,
            {
              provider: 'firebase',
              subject: decoded.uid,
              email: decoded.email,
              emailVerified: decoded.email_verified === true,
            },
            ctx.now(),
          );
          await done(req, res, userId, 'firebase', safeReturnTo(body.return_to));
        } catch (err) {
          if (err instanceof SignInRefused)
            return signInPage(ctx, req, res, 403, `Cannot sign you in: ${err.message}.`);
          throw err;
        }
      });
    },
    close: async () => {
      if (!admin) return;
      const [{ app }, { deleteApp }] = await Promise.all([admin, import('firebase-admin/app')]);
      await deleteApp(app);
    },
  };
}
