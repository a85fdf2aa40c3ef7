import { randomBytes } from 'node:crypto';
import type { Response } from 'express';

/** Escapes text for HTML bodies and quoted attributes. */
export function esc(value: unknown): string {
  return String(value)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** Marks a string as HTML already escaped. */
export type Html = { html: string };
export const raw = (html: string): Html => ({ html });

/** Tagged template: interpolations are escaped unless they are `Html`. */
export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0] ?? '';
  values.forEach((v, i) => {
    const part = Array.isArray(v)
      ? v.map((x) => (typeof x === 'object' && x && 'html' in x ? (x as Html).html : esc(x))).join('')
      : typeof v === 'object' && v && 'html' in v
        ? (v as Html).html
        : esc(v ?? '');
    out += part + (strings[i + 1] ?? '');
  });
  return { html: out };
}

const STYLE = `
body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f5f6f8;color:#1b1f24}
main{max-width:42rem;margin:3rem auto;padding:2rem;background:#fff;border-radius:10px;box-shadow:0 1px 4px #0002}
h1{font-size:1.4rem;margin-top:0}
label{display:block;margin:.8rem 0 .3rem;font-weight:600}
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.55rem;font:inherit;border:1px solid #bbb;border-radius:6px}
button{font:inherit;padding:.5rem 1.1rem;border-radius:6px;border:1px solid #1f6feb;background:#1f6feb;color:#fff;cursor:pointer;margin:.8rem .4rem 0 0}
button.secondary{background:#fff;color:#1f6feb}
button.danger{background:#fff;color:#c62828;border-color:#c62828;margin:0}
table{width:100%;border-collapse:collapse;table-layout:fixed;margin:1rem 0}
td,th{text-align:left;padding:.4rem;border-bottom:1px solid #e3e3e3;overflow-wrap:anywhere;vertical-align:top}
code,.secret{font-family:ui-monospace,monospace;overflow-wrap:anywhere}
.secret{display:block;padding:.7rem;background:#fff8e1;border:1px solid #f0c36d;border-radius:6px;margin:.6rem 0}
.error{color:#c62828}
.muted{color:#5b636b;font-size:.9rem}
nav{margin-bottom:1rem;display:flex;align-items:center;gap:1rem}nav form{margin-left:auto}nav button{margin:0}
.inline{display:inline}
hr{border:0;border-top:1px solid #e3e3e3;margin:1.5rem 0}
`;

/**
 * Sends a server-rendered page with the protections every page here gets: no caching, no
 * framing (frame-ancestors 'none' and X-Frame-Options), a strict CSP (a per-response nonce for
 * the style and any script), forms posting only to us (plus `formTargets`, the origins a form's
 * redirect may go to: browsers apply form-action to redirects too), no referrer.
 */
export function sendPage(
  res: Response,
  status: number,
  title: string,
  body: Html,
  options: {
    formTargets?: string[];
    scriptSources?: string[];
    connectSources?: string[];
    scripts?: (nonce: string) => Html;
  } = {},
) {
  const nonce = randomBytes(16).toString('base64');
  const csp = [
    "default-src 'none'",
    `style-src 'nonce-${nonce}'`,
    `script-src 'nonce-${nonce}'${options.scriptSources?.length ? ` ${options.scriptSources.join(' ')}` : ''}`,
    ...(options.connectSources?.length ? [`connect-src ${options.connectSources.join(' ')}`] : []),
    "img-src 'self' data:",
    `form-action 'self'${options.formTargets?.length ? ` ${options.formTargets.join(' ')}` : ''}`,
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join('; ');
  res.status(status);
  res.set({
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    pragma: 'no-cache',
    'content-security-policy': csp,
    'x-frame-options': 'DENY',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  });
  const scripts = options.scripts ? options.scripts(nonce).html : '';
  res.send(
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>${esc(title)} · Deploy MCP</title><style nonce="${nonce}">${STYLE}</style></head><body><main>${body.html}</main>${scripts}</body></html>`,
  );
}

/** An error page: never a redirect (the redirect target itself may be what is wrong). */
export function sendErrorPage(res: Response, status: number, message: string) {
  sendPage(
    res,
    status,
    'Error',
    html`<h1>Something is wrong with this request</h1><p class="error">${message}</p><p class="muted">Go back to the app you came from and try again.</p>`,
  );
}
