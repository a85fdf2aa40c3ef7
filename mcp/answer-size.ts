import { encodeCursor } from './pagination.ts';

/**
 * Every tool's default answer fits this many characters (about 4k tokens), as the JSON text
 * clients read: the fields an agent can grow (logs, reasons, env vars, lists) are shortened to
 * fit, and the answer says how to get the rest.
 */
export const MAX_ANSWER_CHARS = 16_000;

/** Characters of an answer as clients read it (runTool's JSON text). */
export function answerChars(answer: unknown): number {
  return JSON.stringify(answer).length;
}

/** `s` cut to `max` characters, saying how many more there were. */
export function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max)}… (${s.length - max} more characters)`;
}

/** A failure reason's first line, clipped: what list views show (get_service has the rest). */
export function firstLine(reason: string | null, max = 300): string | null {
  if (reason === null) return null;
  const [line = ''] = reason.split('\n');
  const more = reason.length > line.length ? ' (more in get_service with deployment)' : '';
  return clip(line, max) + more;
}

/**
 * A failure reason as get_service shows it: the first line, then at most `maxLines` lines with
 * repeated lines collapsed and each line clipped.
 */
export function boundedReason(reason: string | null, maxLines = 20, lineChars = 500): string | null {
  if (reason === null) return null;
  const lines = reason.split('\n');
  const out: string[] = [];
  let repeats = 0;
  for (const line of lines) {
    if (out.length && out[out.length - 1] === clip(line, lineChars)) {
      repeats++;
      continue;
    }
    if (repeats) out.push(`(the line above ${repeats} more time${repeats > 1 ? 's' : ''})`);
    repeats = 0;
    out.push(clip(line, lineChars));
  }
  if (repeats) out.push(`(the line above ${repeats} more time${repeats > 1 ? 's' : ''})`);
  if (out.length <= maxLines + 1) return out.join('\n');
  return [...out.slice(0, maxLines + 1), `… ${out.length - maxLines - 1} more lines: see the logs`].join(
    '\n',
  );
}

/**
 * One page of a list, shortened until the answer fits: the cursor then continues right after
 * the last item shown, so paging on sees every item once. `rows` were fetched with one extra
 * row (as for `page`).
 */
export function fitPage<T extends { id: string }, A extends Record<string, unknown>>(
  rows: T[],
  limit: number,
  tool: string,
  answer: (items: T[], next: string | null, note: string) => A,
): A {
  let shown = Math.min(rows.length, limit);
  for (;;) {
    const items = rows.slice(0, shown);
    const last = items[items.length - 1];
    const more = rows.length > shown;
    const next = more && last ? encodeCursor(last.id) : null;
    const note = next
      ? `${shown < limit ? `Shortened to ${shown} item(s) to fit ${MAX_ANSWER_CHARS} characters. ` : ''}` +
        `More results: call ${tool} again with cursor="${next}".`
      : 'End of list.';
    const a = answer(items, next, note);
    if (shown <= 1 || answerChars(a) <= MAX_ANSWER_CHARS) return a;
    shown = Math.max(1, Math.floor(shown * (MAX_ANSWER_CHARS / answerChars(a))) - 1);
  }
}
