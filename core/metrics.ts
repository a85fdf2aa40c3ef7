import { createHash, timingSafeEqual } from 'node:crypto';
import type { Request, Response } from 'express';
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';
import type { Logger } from './log.ts';

/**
 * Who may read GET /metrics: nobody (404, the default), anyone (`DEPLOY_MCP_METRICS=public`), or
 * whoever sends `Authorization: Bearer <DEPLOY_MCP_METRICS_TOKEN>`.
 */
export type MetricsAccess = { mode: 'off' } | { mode: 'public' } | { mode: 'token'; token: string };

/** How a tool call ended: its result, a domain error the agent can act on, or our fault. */
export type ToolOutcome = 'ok' | 'error' | 'fault';
/** Why a tool call was our fault. */
export type ToolFault = 'internal' | 'disk_full';
/** How a request to /mcp ended, from its HTTP status. */
export type RequestOutcome = 'ok' | 'unauthenticated' | 'refused' | 'error';

/** At most this many distinct tool labels; further names count as "other" (bounded cardinality). */
const MAX_TOOL_LABELS = 64;
const TOOL_NAME = /^[a-z][a-z0-9_]{0,63}$/;

/**
 * The process's Prometheus registry: MCP figures recorded here, deploy figures registered by the
 * deployer (workers/deploy/deploy-metrics.ts), and prom-client's default process metrics. Labels
 * hold only tool names and outcome enums: never a user, email, key, service name or secret.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly toolSeconds: Histogram<'tool' | 'outcome'>;
  private readonly toolFaults: Counter<'tool' | 'kind'>;
  private readonly authFailures: Counter<'reason'>;
  private readonly requests: Counter<'outcome'>;
  private readonly toolLabels = new Set<string>();

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    this.toolSeconds = new Histogram({
      name: 'deploy_mcp_tool_duration_seconds',
      help: 'MCP tool call latency, per tool and outcome (ok, error: a domain error, fault: ours)',
      labelNames: ['tool', 'outcome'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120],
      registers,
    });
    this.toolFaults = new Counter({
      name: 'deploy_mcp_tool_faults_total',
      help: 'MCP tool calls that failed through our fault (internal error, full disk)',
      labelNames: ['tool', 'kind'],
      registers,
    });
    this.authFailures = new Counter({
      name: 'deploy_mcp_auth_failures_total',
      help: 'Requests to /mcp refused for a missing or an invalid (unknown, revoked, expired) token',
      labelNames: ['reason'],
      registers,
    });
    this.requests = new Counter({
      name: 'deploy_mcp_requests_total',
      help: 'Requests to /mcp by outcome (ok, unauthenticated, refused: other 4xx, error: 5xx)',
      labelNames: ['outcome'],
      registers,
    });
    for (const reason of ['missing', 'invalid']) this.authFailures.inc({ reason }, 0);
    for (const outcome of ['ok', 'unauthenticated', 'refused', 'error']) this.requests.inc({ outcome }, 0);
  }

  observeTool(tool: string, outcome: ToolOutcome, seconds: number, fault?: ToolFault) {
    const label = this.toolLabel(tool);
    this.toolSeconds.observe({ tool: label, outcome }, seconds);
    if (outcome === 'fault') this.toolFaults.inc({ tool: label, kind: fault ?? 'internal' });
  }

  authFailed(reason: 'missing' | 'invalid') {
    this.authFailures.inc({ reason });
  }

  requestEnded(status: number) {
    this.requests.inc({ outcome: requestOutcome(status) });
  }

  private toolLabel(tool: string): string {
    if (this.toolLabels.has(tool)) return tool;
    if (!TOOL_NAME.test(tool) || this.toolLabels.size >= MAX_TOOL_LABELS) return 'other';
    this.toolLabels.add(tool);
    return tool;
  }
}

export function requestOutcome(status: number): RequestOutcome {
  if (status < 400) return 'ok';
  if (status === 401) return 'unauthenticated';
  if (status < 500) return 'refused';
  return 'error';
}

/**
 * GET /metrics in the Prometheus text format, or undefined when metrics are off (the route is
 * then not served: 404). With a token, any other request gets 401; the token is compared in
 * constant time (over SHA-256 digests, so lengths leak nothing either).
 */
export function metricsHandler(access: MetricsAccess, metrics: Metrics, log: Logger) {
  if (access.mode === 'off') return undefined;
  const expected = access.mode === 'token' ? digest(access.token) : undefined;
  return async (req: Request, res: Response) => {
    res.set('cache-control', 'no-store');
    if (expected && !bearerMatches(req.headers.authorization, expected)) {
      res
        .set('www-authenticate', 'Bearer realm="metrics"')
        .status(401)
        .type('text/plain')
        .send('unauthorized\n');
      return;
    }
    try {
      const body = await metrics.registry.metrics();
      res.type(metrics.registry.contentType).send(body);
    } catch (err) {
      log.error({ err }, 'collecting metrics failed');
      res.status(500).type('text/plain').send('collecting metrics failed\n');
    }
  };
}

function bearerMatches(header: string | undefined, expected: Buffer): boolean {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  // Hash even when absent, so a missing header costs the same as a wrong one.
  const given = digest(match?.[1] ?? '');
  return timingSafeEqual(given, expected) && match !== null;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}
