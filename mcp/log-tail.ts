/** Default and maximum lines of a log tail in tool outputs. */
export const DEFAULT_LOG_LINES = 50;

export type LogTail = { lines: string[]; truncated: boolean; note: string };

/** The last `n` lines of `text`, saying how many were left out and how to see more. */
export function logTail(text: string | null | undefined, n: number, more: string): LogTail {
  const all = text ? text.replace(/\n$/, '').split('\n') : [];
  const lines = n === 0 ? [] : all.slice(-n);
  const omitted = all.length - lines.length;
  return {
    lines,
    truncated: omitted > 0,
    note: omitted > 0 ? `${omitted} earlier line(s) omitted; ${more}` : `${lines.length} line(s).`,
  };
}
