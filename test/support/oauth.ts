import { createHash, randomBytes } from 'node:crypto';
import type { OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import type {
  OAuthClientInformationMixed,
  OAuthClientMetadata,
  OAuthTokens,
} from '@modelcontextprotocol/sdk/shared/auth.js';

/** A PKCE pair (S256). */
export function pkce() {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

export type FetchResult = {
  status: number;
  headers: Headers;
  body: string;
  location: string | undefined;
  setCookies: string[];
};

/**
 * A minimal browser over fetch for the sign-in and consent pages: keeps cookies (the `__Host-`
 * ones included: the server is on loopback, where we play the browser), never follows redirects.
 */
export class PageClient {
  readonly cookies = new Map<string, string>();

  readonly origin: string;

  constructor(origin: string) {
    this.origin = origin;
  }

  async request(
    path: string,
    init: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {},
  ): Promise<FetchResult> {
    const url = path.startsWith('http') ? path : `${this.origin}${path}`;
    const headers: Record<string, string> = { ...init.headers };
    if (this.cookies.size) headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    let body: string | undefined;
    if (init.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(init.form).toString();
    }
    const res = await fetch(url, {
      method: init.method ?? (body ? 'POST' : 'GET'),
      headers,
      body,
      redirect: 'manual',
    });
    const setCookies = res.headers.getSetCookie();
    for (const c of setCookies) {
      const [pair] = c.split(';');
      const eq = pair?.indexOf('=') ?? -1;
      if (pair && eq > 0) {
        const value = pair.slice(eq + 1);
        if (value === '' || /Max-Age=0/i.test(c)) this.cookies.delete(pair.slice(0, eq));
        else this.cookies.set(pair.slice(0, eq), value);
      }
    }
    const location = res.headers.get('location') ?? undefined;
    return { status: res.status, headers: res.headers, body: await res.text(), location, setCookies };
  }
}

/** The hidden inputs of the form posting to `action` (HTML-unescaped). */
export function formFields(page: string, action: string): Record<string, string> {
  const start = page.indexOf(`action="${action}"`);
  if (start < 0) throw new Error(`no form posting to ${action} in:\n${page.slice(0, 2000)}`);
  const form = page.slice(start, page.indexOf('</form>', start));
  const fields: Record<string, string> = {};
  for (const m of form.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) {
    fields[m[1] as string] = (m[2] as string)
      .replace(/&quot;/g, '"')
      .replace(/&#39;/g, "'")
      .replace(/&lt;/g, '<')
      .replace(/&gt;/g, '>')
      .replace(/&amp;/g, '&');
  }
  return fields;
}

/** Registers a public client dynamically (RFC 7591). */
export async function registerClient(origin: string, redirectUris: string[], name = 'Test client') {
  const res = await fetch(`${origin}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name: name,
      redirect_uris: redirectUris,
      token_endpoint_auth_method: 'none',
    }),
  });
  if (res.status !== 201) throw new Error(`registration failed: ${res.status} ${await res.text()}`);
  return (await res.json()) as {
    client_id: string;
    client_secret?: string;
    token_endpoint_auth_method: string;
  };
}

/** Signs the page client in with a login code (following the sign-in redirect of `authorizePath`, if given). */
export async function signIn(browser: PageClient, code: string, returnTo = '/account/keys') {
  const page = await browser.request(`/sign-in?return_to=${encodeURIComponent(returnTo)}`);
  const fields = formFields(page.body, '/sign-in/login_code');
  const res = await browser.request('/sign-in/login_code', { form: { ...fields, code } });
  return res;
}

/**
 * Runs /authorize as a signed-in user who allows (or denies): returns the redirect the server
 * answered with (the client's redirect URI with code or error, state and iss).
 */
export async function consent(
  browser: PageClient,
  authorizeUrl: string,
  decision: 'allow' | 'deny' = 'allow',
) {
  const page = await browser.request(authorizeUrl);
  if (page.status !== 200) return page;
  const fields = formFields(page.body, '/authorize');
  return browser.request('/authorize', { form: { ...fields, decision } });
}

/** The /authorize URL for a client. */
export function authorizeUrl(
  origin: string,
  p: {
    clientId: string;
    redirectUri: string;
    challenge?: string;
    method?: string;
    state?: string;
    resource?: string;
    responseType?: string;
    scope?: string;
  },
) {
  const url = new URL(`${origin}/authorize`);
  url.searchParams.set('response_type', p.responseType ?? 'code');
  url.searchParams.set('client_id', p.clientId);
  url.searchParams.set('redirect_uri', p.redirectUri);
  if (p.challenge !== undefined) url.searchParams.set('code_challenge', p.challenge);
  if (p.method !== undefined) url.searchParams.set('code_challenge_method', p.method);
  if (p.state !== undefined) url.searchParams.set('state', p.state);
  if (p.resource !== undefined) url.searchParams.set('resource', p.resource);
  if (p.scope !== undefined) url.searchParams.set('scope', p.scope);
  return url.pathname + url.search;
}

/** POSTs a form to the token endpoint. */
export async function tokenRequest(origin: string, form: Record<string, string>) {
  const res = await fetch(`${origin}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
  });
  return {
    status: res.status,
    headers: res.headers,
    json: (await res.json().catch(() => ({}))) as Record<string, string | number>,
  };
}

/** A controllable clock for codes, tokens and sessions. */
export class TestClock {
  private offsetMs = 0;
  now = () => new Date(Date.now() + this.offsetMs);
  advance(ms: number) {
    this.offsetMs += ms;
  }
}

/**
 * The MCP SDK's OAuthClientProvider, in memory: `authorize` plays the browser step (sign-in and
 * consent, done by an HTTP page client or by chromium) and returns the code it was sent back.
 */
export class MemoryOAuthProvider implements OAuthClientProvider {
  private info: OAuthClientInformationMixed | undefined;
  private saved: OAuthTokens | undefined;
  private verifier = '';
  /** The code the last authorization ended with. */
  lastCode: string | undefined;
  /** The state the SDK sent, echoed back. */
  lastState: string | undefined;

  readonly redirectUrl: string;
  private readonly authorize: (url: URL) => Promise<string>;
  readonly clientMetadataUrl?: string;

  constructor(redirectUrl: string, authorize: (url: URL) => Promise<string>, clientMetadataUrl?: string) {
    this.redirectUrl = redirectUrl;
    this.authorize = authorize;
    this.clientMetadataUrl = clientMetadataUrl;
  }

  get clientMetadata(): OAuthClientMetadata {
    return {
      client_name: 'SDK test client',
      redirect_uris: [this.redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  clientInformation() {
    return this.info;
  }
  saveClientInformation(info: OAuthClientInformationMixed) {
    this.info = info;
  }
  tokens() {
    return this.saved;
  }
  saveTokens(tokens: OAuthTokens) {
    this.saved = tokens;
  }
  async redirectToAuthorization(url: URL) {
    this.lastState = url.searchParams.get('state') ?? undefined;
    this.lastCode = await this.authorize(url);
  }
  saveCodeVerifier(v: string) {
    this.verifier = v;
  }
  codeVerifier() {
    return this.verifier;
  }
}
