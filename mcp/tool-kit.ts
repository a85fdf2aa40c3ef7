import { randomUUID } from 'node:crypto';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { Caller } from '../core/api-keys.ts';
import type { Db } from '../core/db/client.ts';
import { DomainError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';

/** What every tool handler gets: the verified caller (never from arguments) and services. */
export type ToolContext = {
  db: Db;
  caller: Caller;
  log: Logger;
  /** Base URL of this server, for git remotes and links. */
  publicUrl: string;
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

/**
 * Runs a tool body. Its value becomes structured content (and JSON text for clients that
 * read text only). A DomainError becomes an `isError` result with its message; any other
 * error is logged with a reference and the agent sees only that reference.
 */
export async function runTool(
  ctx: ToolContext,
  tool: string,
  body: () => Promise<Record<string, unknown>>,
): Promise<CallToolResult> {
  try {
    const structured = await body();
    return {
      content: [{ type: 'text', text: JSON.stringify(structured, null, 2) }],
      structuredContent: structured,
    };
  } catch (err) {
    if (err instanceof DomainError) {
      return { isError: true, content: [{ type: 'text', text: err.message }] };
    }
    const ref = randomUUID().slice(0, 8);
    ctx.log.error({ err, tool, ref, userId: ctx.caller.userId }, 'tool failed');
    return {
      isError: true,
      content: [{ type: 'text', text: `Internal error (ref ${ref}). It was logged; retry later.` }],
    };
  }
}
