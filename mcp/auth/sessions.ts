import { randomBytes } from 'node:crypto';
import type { Request, Response } from 'express';
import type { Db } from '../../core/db/client.ts';
import { hashSecret, mac, newSecret, SESSION_PREFIX, safeEqual } from './secrets.ts';

export const SESSION_COOKIE = '__Host-dmcp_session';
export const CSRF_COOKIE = '__Host-dmcp_csrf';
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;
export const CSRF_TTL_MS = 10 * 60 * 1000;

/** `__Host-` cookies: Secure, Path=/, no Domain; HttpOnly and SameSite=Lax. */
function setCookie(res: Response, name: string, value: string, maxAgeMs: number | undefined) {
  res.append(
    'set-cookie',
    `${name}=${value}; Path=/; Secure; HttpOnly; SameSite=Lax${maxAgeMs === undefined ? '' : `; Max-Age=${Math.floor(maxAgeMs / 1000)}`}`,
  );
}

export function readCookie(req: Request, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export type SignedIn = { sessionId: string; userId: string; email: string };

/** The browser's session, if its cookie names a live one. */
export async function currentSession(db: Db, req: Request, now: Date): Promise<SignedIn | undefined> {
  const secret = readCookie(req, SESSION_COOKIE);
  if (!secret || !/^dmo_ss_[A-Za-z0-9_-]{43}$/.test(secret)) return undefined;
  const row = await db.browserSession.findUnique({
    where: { secretHash: hashSecret(secret) },
    select: {
      id: true,
      expiresAt: true,
      revokedAt: true,
      user: { select: { id: true, email: true, disabledAt: true } },
    },
  });
  if (!row || row.revokedAt || row.expiresAt <= now || row.user.disabledAt) return undefined;
  return { sessionId: row.id, userId: row.user.id, email: row.user.email };
}

/** Signs the browser in as `userId`: a new session (a fresh id, so a planted cookie is useless). */
export async function startSession(db: Db, res: Response, userId: string, method: string, now: Date) {
  const secret = newSecret(SESSION_PREFIX);
  await db.browserSession.create({
    data: {
      secretHash: hashSecret(secret),
      userId,
      method,
      createdAt: now,
      expiresAt: new Date(now.getTime() + SESSION_TTL_MS),
    },
  });
  setCookie(res, SESSION_COOKIE, secret, SESSION_TTL_MS);
}

export async function endSession(db: Db, req: Request, res: Response, now: Date) {
  const secret = readCookie(req, SESSION_COOKIE);
  if (secret)
    await db.browserSession.updateMany({
      where: { secretHash: hashSecret(secret), revokedAt: null },
      data: { revokedAt: now },
    });
  setCookie(res, SESSION_COOKIE, '', 0);
}

/**
 * CSRF tokens: an HMAC over the browser's `__Host-dmcp_csrf` cookie, its session, the action
 * and the time; valid 10 minutes. A cross-site page can neither read nor set a `__Host-`
 * cookie, so it cannot produce a token that matches.
 */
export class Csrf {
  private readonly key: string;
  private readonly now: () => Date;

  constructor(key: string, now: () => Date) {
    this.key = key;
    this.now = now;
  }

  /** The browser's CSRF cookie, set now when it has none. */
  binding(req: Request, res: Response): string {
    const existing = readCookie(req, CSRF_COOKIE);
    if (existing && /^[A-Za-z0-9_-]{32}$/.test(existing)) return existing;
    const fresh = randomBytes(24).toString('base64url');
    setCookie(res, CSRF_COOKIE, fresh, undefined);
    // Later reads in this request see it too.
    req.headers.cookie = `${req.headers.cookie ? `${req.headers.cookie}; ` : ''}${CSRF_COOKIE}=${fresh}`;
    return fresh;
  }

  token(req: Request, res: Response, action: string, sessionId = ''): string {
    const ts = this.now().getTime().toString(36);
    return `${ts}.${mac(this.key, `${this.binding(req, res)}|${sessionId}|${action}|${ts}`)}`;
  }

  check(req: Request, presented: unknown, action: string, sessionId = ''): boolean {
    const cookie = readCookie(req, CSRF_COOKIE);
    if (!cookie || typeof presented !== 'string') return false;
    const [ts, sig] = presented.split('.', 2);
    if (!ts || !sig) return false;
    const issued = Number.parseInt(ts, 36);
    const age = this.now().getTime() - issued;
    if (!Number.isFinite(issued) || age < 0 || age > CSRF_TTL_MS) return false;
    return safeEqual(sig, mac(this.key, `${cookie}|${sessionId}|${action}|${ts}`));
  }
}
