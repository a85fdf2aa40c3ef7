import { randomUUID } from 'node:crypto';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { Caller } from '../core/api-keys.ts';
import type { Db } from '../core/db/client.ts';
import { DomainError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { Metrics, ToolFault, ToolOutcome } from '../core/metrics.ts';
import { outOfDiskSpace } from '../core/resource-faults.ts';

/** Services every tool handler uses; the caller comes per request (see callerOf). */
export type ToolContext = {
  db: Db;
  log: Logger;
  /** Base URL of this server, for git remotes and links. */
  publicUrl: string;
  /** The data dir: a database I/O error while its disk is nearly full counts as a full disk. */
  dataDir?: string;
  /** Where tool latency and faults are counted (core/metrics.ts); absent: not counted. */
  metrics?: Metrics;
};

export const READ_ONLY = {
  readOnlyHint: true,
  destructiveHint: false,
  idempotentHint: true,
  openWorldHint: false,
};
export const CREATES = {
  readOnlyHint: false,
  destructiveHint: false,
  idempotentHint: true,
  openWorldHint: false,
};
export const CHANGES = {
  readOnlyHint: false,
  destructiveHint: false,
  idempotentHint: false,
  openWorldHint: false,
};
export const DESTROYS = {
  readOnlyHint: false,
  destructiveHint: true,
  idempotentHint: true,
  openWorldHint: false,
};

/** What a tool handler receives besides its arguments (the part we use). */
export type ToolExtra = { authInfo?: AuthInfo };

/** The verified caller the auth middleware attached to this request (never from arguments). */
export function callerAuthInfo(caller: Caller): AuthInfo {
  return { token: caller.keyPrefix, clientId: caller.keyPrefix, scopes: [], extra: { caller } };
}

function callerOf(extra: ToolExtra): Caller {
  const caller = extra.authInfo?.extra?.caller as Caller | undefined;
  if (!caller) throw new Error('tool called without an authenticated caller');
  return caller;
}

/** What an agent reads when the server's disk (or its database's) is full. */
export const OUT_OF_DISK_SPACE_MESSAGE =
  'the server is out of disk space; the operator has been told (try again later)';

/**
 * Runs a tool body for the request's verified caller. Its value becomes structured content (and JSON text for clients that
 * read text only: compact, since indentation makes it half again as long, tokens the agent pays
 * for and bytes the server writes). A DomainError becomes an `isError` result with its message; a full disk
 * becomes an `isError` result saying so (logged as an error); any other error is logged with a
 * reference and the agent sees only that reference.
 */
export async function runTool(
  ctx: ToolContext,
  extra: ToolExtra,
  tool: string,
  body: (caller: Caller) => Promise<Record<string, unknown>>,
): Promise<CallToolResult> {
  const caller = callerOf(extra);
  const started = performance.now();
  const done = (outcome: ToolOutcome, fault?: ToolFault) =>
    ctx.metrics?.observeTool(tool, outcome, (performance.now() - started) / 1000, fault);
  try {
    const structured = await body(caller);
    const result: CallToolResult = {
      content: [{ type: 'text', text: JSON.stringify(structured) }],
      structuredContent: structured,
    };
    done('ok');
    return result;
  } catch (err) {
    if (err instanceof DomainError) {
      done('error');
      return { isError: true, content: [{ type: 'text', text: err.message }] };
    }
    // A full disk (database or files) is the operator's to fix; the agent can only wait.
    if (await outOfDiskSpace(err, [ctx.dataDir])) {
      ctx.log.error({ err, tool, userId: caller.userId }, 'tool failed: out of disk space');
      done('fault', 'disk_full');
      return { isError: true, content: [{ type: 'text', text: OUT_OF_DISK_SPACE_MESSAGE }] };
    }
    const ref = randomUUID().slice(0, 8);
    ctx.log.error({ err, tool, ref, userId: caller.userId }, 'tool failed');
    done('fault', 'internal');
    return {
      isError: true,
      content: [{ type: 'text', text: `Internal error (ref ${ref}). It was logged; retry later.` }],
    };
  }
}
