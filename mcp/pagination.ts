import { invalidInput } from '../core/errors.ts';

export const DEFAULT_PAGE_SIZE = 20;

/** Cursors are opaque to agents: the last row's id, base64url-encoded. */
export function encodeCursor(id: string): string {
  return Buffer.from(id, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  const id = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!/^[a-z0-9]{20,40}$/.test(id))
    throw invalidInput('cursor: not a next_cursor value from a previous page');
  return id;
}

/**
 * Splits `rows` (fetched with one extra row) into a page and the cursor for the next one,
 * with a sentence that tells the agent how to continue.
 */
export function page<T extends { id: string }>(rows: T[], limit: number, tool: string) {
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  const next = rows.length > limit && last ? encodeCursor(last.id) : null;
  return {
    items,
    next_cursor: next,
    note: next ? `More results: call ${tool} again with cursor="${next}".` : 'End of list.',
  };
}
