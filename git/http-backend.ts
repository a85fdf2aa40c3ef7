import { spawn } from 'node:child_process';
import type { Request, Response } from 'express';

export type HttpBackendOptions = {
  /** GIT_PROJECT_ROOT: the directory PATH_INFO is resolved in. */
  projectRoot: string;
  /** Path of the request inside projectRoot, e.g. "/alice/app.git/info/refs". */
  pathInfo: string;
  /** Authenticated user; git http-backend enables receive-pack only when it is set. */
  remoteUser: string;
  /** Extra environment for git and its hooks. */
  env: Record<string, string>;
  /** Request bodies larger than this are cut off with 413. */
  maxBodyBytes: number;
};

export class BodyTooLarge extends Error {}

/**
 * Serves one smart-HTTP request with `git http-backend` (CGI): the request body streams to
 * its stdin, its CGI headers become the response status and headers, the rest streams back.
 * Resolves with the backend's exit code once the response is complete.
 */
export function runHttpBackend(req: Request, res: Response, o: HttpBackendOptions): Promise<number> {
  const query = req.originalUrl.includes('?') ? req.originalUrl.slice(req.originalUrl.indexOf('?') + 1) : '';
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    GIT_PROJECT_ROOT: o.projectRoot,
    GIT_HTTP_EXPORT_ALL: '1',
    PATH_INFO: o.pathInfo,
    REQUEST_METHOD: req.method,
    QUERY_STRING: query,
    REMOTE_USER: o.remoteUser,
    REMOTE_ADDR: req.socket.remoteAddress ?? '',
    CONTENT_TYPE: req.headers['content-type'] ?? '',
    ...(req.headers['content-length'] ? { CONTENT_LENGTH: req.headers['content-length'] } : {}),
    ...(req.headers['content-encoding'] ? { HTTP_CONTENT_ENCODING: req.headers['content-encoding'] } : {}),
    ...(typeof req.headers['git-protocol'] === 'string' ? { GIT_PROTOCOL: req.headers['git-protocol'] } : {}),
    ...o.env,
  };
  const child = spawn('git', ['http-backend'], { env, stdio: ['pipe', 'pipe', 'pipe'] });

  return new Promise((resolve, reject) => {
    let received = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received > o.maxBodyBytes && !tooLarge) {
        tooLarge = true;
        child.kill('SIGKILL');
        req.unpipe(child.stdin);
      }
    });
    req.pipe(child.stdin);
    child.stdin.on('error', () => undefined); // the backend may exit before reading everything

    let stderr = '';
    child.stderr.on('data', (c: Buffer) => {
      if (stderr.length < 4096) stderr += c.toString();
    });

    let head = Buffer.alloc(0);
    let headersSent = false;
    child.stdout.on('data', (chunk: Buffer) => {
      if (headersSent) {
        res.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const end = findHeaderEnd(head);
      if (end === undefined) return;
      const { status, headers } = parseCgiHeaders(head.subarray(0, end.at).toString('latin1'));
      res.writeHead(status, headers);
      headersSent = true;
      const rest = head.subarray(end.at + end.length);
      if (rest.length) res.write(rest);
    });

    child.on('error', reject);
    child.on('close', (code) => {
      if (tooLarge) {
        if (!headersSent)
          res.status(413).type('text/plain').send(`push larger than ${o.maxBodyBytes} bytes\n`);
        else res.end();
        reject(new BodyTooLarge(`request body over ${o.maxBodyBytes} bytes`));
        return;
      }
      if (!headersSent) {
        res.status(500).type('text/plain').send('git backend failed\n');
        reject(new Error(`git http-backend exited ${code} without a response: ${stderr.trim()}`));
        return;
      }
      res.end();
      resolve(code ?? -1);
    });
  });
}

function findHeaderEnd(buf: Buffer): { at: number; length: number } | undefined {
  const crlf = buf.indexOf('\r\n\r\n');
  const lf = buf.indexOf('\n\n');
  if (crlf !== -1 && (lf === -1 || crlf < lf)) return { at: crlf, length: 4 };
  if (lf !== -1) return { at: lf, length: 2 };
  return undefined;
}

function parseCgiHeaders(text: string): { status: number; headers: Record<string, string> } {
  let status = 200;
  const headers: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const name = line.slice(0, i).trim();
    const value = line.slice(i + 1).trim();
    if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10) || 500;
    else headers[name] = value;
  }
  return { status, headers };
}
