import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Caller } from '../core/api-keys.ts';
import type { Db } from '../core/db/client.ts';
import type { GitHubRepos } from '../core/github/repos.ts';
import { type HealthCheck, healthHandler } from '../core/health.ts';
import type { Logger } from '../core/log.ts';
import { type Metrics, type MetricsAccess, metricsHandler } from '../core/metrics.ts';
import type { SecretBox } from '../core/secrets.ts';
import type { GitHosting } from '../git/hosting.ts';
import { type GitHttpDeps, handleGitRequest } from '../git/smart-http.ts';
import type { DeployStarter } from '../workers/deploy/start-deploy.ts';
import type { ResourceManager } from '../workers/resources/manager.ts';
import { type Authenticator, BearerAuthenticator } from './auth/access-tokens.ts';
import { resourceMetadataUrl } from './auth/metadata.ts';
import { type AuthServerOptions, createAuthServer } from './auth/router.ts';
import { createServer, ServerPool } from './server.ts';
import { callerAuthInfo } from './tool-kit.ts';

export type McpAppDeps = {
  db: Db;
  log: Logger;
  /** Verifies API keys; OAuth access tokens are verified by the authorization server's own. */
  authenticator: Authenticator;
  /** Options of the OAuth authorization server and sign-in pages (mcp/auth/). */
  oauth?: AuthServerOptions;
  secrets: SecretBox;
  /** Base URL of this server; its origin is always allowed. */
  publicUrl: string;
  /** Further browser origins allowed to call /mcp. */
  allowedOrigins: string[];
  /** Checks /healthz runs (database, Temporal, ...). */
  health: Record<string, HealthCheck>;
  /** Our git server: repos for the tools, smart HTTP under /git. */
  git: { hosting: GitHosting; http: GitHttpDeps };
  /** Starts deployments (create_service, redeploy_service); absent on a server without a pipeline. */
  deploys?: DeployStarter;
  /** GitHub repos through the App (host "github"); absent: no App configured. */
  github?: GitHubRepos;
  /** Live services one user may have (default 50). */
  maxServicesPerUser?: number;
  /** The data dir: tools answer "out of disk space" for database I/O errors while it is full. */
  dataDir?: string;
  /** Creates and deletes resources (databases); absent on a server without workers. */
  resources?: ResourceManager;
  /** Counts requests, auth failures and tool calls; absent: nothing is counted. */
  metrics?: Metrics;
  /** Who may read GET /metrics (default: nobody, 404). */
  metricsAccess?: MetricsAccess;
};

/** Largest JSON-RPC request body accepted on /mcp. */
export const MAX_BODY = '1mb';
const KEY_PARAMS = ['api_key', 'apikey', 'key', 'token', 'access_token'];

/** The `server` role's express app: all of its HTTP wiring is in this file. */
export function createMcpApp(deps: McpAppDeps) {
  const app = express();
  app.disable('x-powered-by');
  app.get('/healthz', healthHandler('server', deps.health));
  const scrape =
    deps.metrics && metricsHandler(deps.metricsAccess ?? { mode: 'off' }, deps.metrics, deps.log);
  if (scrape) app.get('/metrics', scrape);

  // Git smart HTTP: git clients authenticate with a repo token (Basic), not an API key.
  app.use('/git', (req, res, next) => {
    handleGitRequest(deps.git.http, req, res).catch(next);
  });

  // OAuth 2.1 authorization server, sign-in and account pages (mcp/auth/README.md).
  const auth = createAuthServer({
    db: deps.db,
    log: deps.log,
    publicUrl: deps.publicUrl,
    csrfKey: deps.secrets.derive('oauth-csrf'),
    ...deps.oauth,
  });
  app.use(auth.router);
  const bearer = new BearerAuthenticator(deps.authenticator, auth.accessTokens);

  const origins = new Set([new URL(deps.publicUrl).origin, ...deps.allowedOrigins]);
  app.use(
    '/mcp',
    countRequests(deps.metrics),
    refuseKeysInUrl,
    checkOrigin(origins),
    authenticate(bearer, resourceMetadataUrl(auth.issuer), deps.metrics),
    express.json({ limit: MAX_BODY }),
  );
  const pool = new ServerPool(() =>
    createServer(
      {
        db: deps.db,
        log: deps.log,
        publicUrl: deps.publicUrl,
        ...(deps.dataDir ? { dataDir: deps.dataDir } : {}),
        ...(deps.metrics ? { metrics: deps.metrics } : {}),
      },
      {
        secrets: deps.secrets,
        git: deps.git.hosting,
        ...(deps.deploys ? { deploys: deps.deploys } : {}),
        ...(deps.github ? { github: deps.github } : {}),
        ...(deps.maxServicesPerUser ? { maxServicesPerUser: deps.maxServicesPerUser } : {}),
        ...(deps.resources ? { resources: deps.resources } : {}),
      },
    ),
  );
  app.post('/mcp', (req, res) => handleMcp(deps, pool, req, res));
  // Stateless server: no sessions, so no standalone SSE stream (GET) and nothing to end (DELETE).
  app.all('/mcp', (_req, res) => {
    res.set('allow', 'POST');
    jsonRpcError(res, 405, -32000, 'Method not allowed: this server is stateless; send JSON-RPC with POST.');
  });
  app.use(errorHandler(deps.log));
  return app;
}

async function handleMcp(deps: McpAppDeps, pool: ServerPool, req: Request, res: Response) {
  const server = pool.take();
  // A plain JSON response is cheaper than an SSE stream; stream only when the client asked for
  // progress notifications (params._meta.progressToken), e.g. create_service waiting for a deploy.
  const transport = new StreamableHTTPServerTransport({
    sessionIdGenerator: undefined,
    enableJsonResponse: !wantsProgress(req.body),
  });
  res.on('close', () => {
    transport.close().then(
      () => pool.give(server),
      (err: unknown) => deps.log.warn({ err }, 'closing an MCP transport failed'),
    );
  });
  try {
    await server.connect(transport);
    // The transport hands req.auth to tool handlers as authInfo: the caller's identity.
    (req as Request & { auth?: AuthInfo }).auth = callerAuthInfo(res.locals.caller as Caller);
    await transport.handleRequest(req, res, req.body);
  } catch (err) {
    deps.log.error({ err }, 'mcp request failed');
    if (!res.headersSent) jsonRpcError(res, 500, -32603, 'Internal server error');
  }
}

function wantsProgress(body: unknown): boolean {
  const messages = Array.isArray(body) ? body : [body];
  return messages.some(
    (m) =>
      (m as { params?: { _meta?: { progressToken?: unknown } } })?.params?._meta?.progressToken !== undefined,
  );
}

/** API keys never travel in URLs (they would land in logs and browser history). */
function refuseKeysInUrl(req: Request, res: Response, next: NextFunction) {
  if (!req.originalUrl.includes('?')) return next(); // the usual case: nothing to parse
  const query = req.originalUrl.split('?')[1] ?? '';
  const params = new URLSearchParams(query);
  const offending =
    [...params.keys()].some((k) => KEY_PARAMS.includes(k.toLowerCase())) || query.includes('dk_live_');
  if (offending) {
    jsonRpcError(
      res,
      400,
      -32600,
      'API keys are not accepted in the URL. Send them as: Authorization: Bearer <key>',
    );
    return;
  }
  next();
}

/** DNS-rebinding protection: a browser Origin must be ours (or configured). */
function checkOrigin(allowed: Set<string>) {
  return (req: Request, res: Response, next: NextFunction) => {
    const origin = req.headers.origin;
    if (origin !== undefined && !allowed.has(origin)) {
      jsonRpcError(res, 403, -32600, `Origin ${origin} is not allowed`);
      return;
    }
    next();
  };
}

/** Counts each request to /mcp by its outcome once its response is sent. */
function countRequests(metrics: Metrics | undefined) {
  return (_req: Request, res: Response, next: NextFunction) => {
    if (metrics) res.on('finish', () => metrics.requestEnded(res.statusCode));
    next();
  };
}

function authenticate(authenticator: Authenticator, metadataUrl: string, metrics?: Metrics) {
  // Every 401 names the protected resource metadata (RFC 9728 §5.1), so OAuth clients can start.
  const realm = `Bearer realm="deploy-mcp", resource_metadata="${metadataUrl}", scope="mcp"`;
  return async (req: Request, res: Response, next: NextFunction) => {
    const header = req.headers.authorization;
    if (!header) {
      metrics?.authFailed('missing');
      res.set('www-authenticate', realm);
      jsonRpcError(
        res,
        401,
        -32001,
        'Authentication required: send Authorization: Bearer <dk_live_… API key or OAuth access token>',
      );
      return;
    }
    const [scheme, key] = header.split(' ', 2);
    try {
      const caller =
        scheme?.toLowerCase() === 'bearer' && key ? await authenticator.authenticate(key.trim()) : undefined;
      if (!caller) {
        metrics?.authFailed('invalid');
        res.set(
          'www-authenticate',
          `${realm}, error="invalid_token", error_description="unknown, revoked or expired token"`,
        );
        jsonRpcError(res, 401, -32001, 'Invalid API key or token: it is unknown, revoked or expired');
        return;
      }
      res.locals.caller = caller;
      next();
    } catch (err) {
      next(err);
    }
  };
}

function jsonRpcError(res: Response, status: number, code: number, message: string) {
  res.status(status).json({ jsonrpc: '2.0', error: { code, message }, id: null });
}

/** Content-Encodings the body parser decodes. */
const ENCODINGS = 'identity, gzip, deflate or br';

function errorHandler(log: Logger) {
  return (err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const e = err as {
      type?: string;
      status?: number;
      expose?: boolean;
      encoding?: string;
      charset?: string;
    };
    if (e.type === 'entity.too.large')
      return jsonRpcError(res, 413, -32600, `Request body exceeds ${MAX_BODY}`);
    if (e.type === 'entity.parse.failed')
      return jsonRpcError(res, 400, -32700, 'Parse error: body is not valid JSON');
    if (e.type === 'encoding.unsupported')
      return jsonRpcError(
        res,
        415,
        -32600,
        `Unsupported Content-Encoding "${e.encoding?.slice(0, 40)}": send ${ENCODINGS}`,
      );
    if (e.type === 'charset.unsupported')
      return jsonRpcError(
        res,
        415,
        -32600,
        `Unsupported charset "${e.charset?.slice(0, 40)}": send JSON in UTF-8`,
      );
    // The body parser's other client faults: a body its Content-Encoding cannot decode, a body
    // shorter than its Content-Length, a request aborted mid-body.
    if (e.expose && e.status && e.status >= 400 && e.status < 500)
      return jsonRpcError(
        res,
        400,
        -32600,
        'Bad request: the body could not be read or decoded for its Content-Encoding',
      );
    log.error({ err }, 'request failed');
    if (!res.headersSent) jsonRpcError(res, 500, -32603, 'Internal server error');
  };
}
