import express, { type Request, type Response, type Router } from 'express';
import type { AuthContext } from './context.ts';
import { type Html, html, sendErrorPage, sendPage } from './html.ts';
import { redeemLoginCode } from './login-codes.ts';
import { currentSession, endSession, startSession } from './sessions.ts';

/** What a sign-in method's form needs to render. */
export type SignInForm = { returnTo: string; csrf: string };

/** The seam sign-in providers plug into (login code, Firebase, GitHub). */
export type SignInMethod = {
  /** Short name, also the session's `method`. */
  id: string;
  /** Its part of the sign-in page. */
  form: (form: SignInForm) => Html;
  /** Sources the page must allow for it (scripts, fetches, form redirects). */
  csp?: { scriptSources?: string[]; connectSources?: string[]; formTargets?: string[] };
  /** Scripts the page runs for it (given the page's CSP nonce). */
  scripts?: (nonce: string) => Html;
  /** Its routes, mounted under /sign-in/<id>. */
  routes: (router: Router, ctx: AuthContext, done: SignInDone) => void;
};

/** Called by a method once it knows who signed in. */
export type SignInDone = (
  req: Request,
  res: Response,
  userId: string,
  method: string,
  returnTo: string,
) => Promise<void>;

/** Where a sign-in may send the browser afterwards: our own consent or account pages only. */
export function safeReturnTo(value: unknown): string {
  if (typeof value !== 'string' || value.length > 4000) return '/account/keys';
  if (
    /^\/(authorize\?|account\/(keys|clients)$)/.test(value) &&
    !value.startsWith('//') &&
    !/[\\\r\n]/.test(value)
  )
    return value;
  return '/account/keys';
}

export function signInPage(ctx: AuthContext, req: Request, res: Response, status = 200, error?: string) {
  const returnTo = safeReturnTo(
    req.query.return_to ?? (req.body as Record<string, unknown> | undefined)?.return_to,
  );
  const csrf = ctx.csrf.token(req, res, 'sign-in');
  const forms = ctx.signInMethods.map((m) => m.form({ returnTo, csrf }));
  const csp = ctx.signInMethods.map((m) => m.csp ?? {});
  sendPage(
    res,
    status,
    'Sign in',
    html`<h1>Sign in to Deploy MCP</h1>${error ? html`<p class="error" role="alert">${error}</p>` : html``}${forms.flatMap((f, i) => (i ? [html`<hr>`, f] : [f]))}`,
    {
      scriptSources: csp.flatMap((c) => c.scriptSources ?? []),
      connectSources: csp.flatMap((c) => c.connectSources ?? []),
      formTargets: csp.flatMap((c) => c.formTargets ?? []),
      scripts: (nonce) => html`${ctx.signInMethods.map((m) => m.scripts?.(nonce) ?? html``)}`,
    },
  );
}

/** The embedded sign-in: a one-time code the operator prints with `deploy-mcp login-code --user <email>`. */
export const loginCodeMethod: SignInMethod = {
  id: 'login_code',
  form: ({ returnTo, csrf }) => html`<form method="post" action="/sign-in/login_code">
<label for="code">One-time login code</label>
<input type="text" id="code" name="code" autocomplete="one-time-code" spellcheck="false" placeholder="XXXX-XXXX-XXXX-XXXX" required>
<input type="hidden" name="return_to" value="${returnTo}"><input type="hidden" name="csrf" value="${csrf}">
<button type="submit">Sign in with code</button>
<p class="muted">Ask your operator to run <code>deploy-mcp login-code --user you@example.com</code>. A code works once, for 10 minutes.</p></form>`,
  routes: (router, ctx, done) => {
    router.post('/', async (req, res) => {
      const body = req.body as Record<string, unknown>;
      if (!ctx.csrf.check(req, body.csrf, 'sign-in'))
        return signInPage(ctx, req, res, 403, 'This form expired or did not come from this site. Try again.');
      const userId =
        typeof body.code === 'string' ? await redeemLoginCode(ctx.db, body.code, ctx.now()) : undefined;
      if (!userId)
        return signInPage(ctx, req, res, 401, 'That code is unknown, used or expired. Ask for a new one.');
      await done(req, res, userId, 'login_code', safeReturnTo(body.return_to));
    });
  },
};

/** /sign-in, /sign-in/<method>, /sign-out. */
export function signInRoutes(ctx: AuthContext): Router {
  const router = express.Router();
  const form = express.urlencoded({ extended: false, limit: '16kb' });
  const done: SignInDone = async (_req, res, userId, method, returnTo) => {
    await startSession(ctx.db, res, userId, method, ctx.now());
    await ctx.db.auditEvent.create({
      data: {
        userId,
        actor: 'user',
        action: 'sign_in',
        targetType: 'user',
        targetId: userId,
        detail: JSON.stringify({ method }),
      },
    });
    res.redirect(303, returnTo);
  };
  router.get('/sign-in', (req, res) => signInPage(ctx, req, res));
  for (const method of ctx.signInMethods) {
    const sub = express.Router();
    sub.use(form);
    method.routes(sub, ctx, done);
    router.use(`/sign-in/${method.id}`, sub);
  }
  router.post('/sign-out', form, async (req, res) => {
    const session = await currentSession(ctx.db, req, ctx.now());
    if (
      session &&
      !ctx.csrf.check(req, (req.body as Record<string, unknown>).csrf, 'sign-out', session.sessionId)
    )
      return sendErrorPage(res, 403, 'This form expired or did not come from this site.');
    await endSession(ctx.db, req, res, ctx.now());
    res.redirect(303, '/sign-in');
  });
  return router;
}
