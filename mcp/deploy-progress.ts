import { clip } from './answer-size.ts';

/** The steps a deployment's progress counts: queued, building, deploying, then its end. */
export const PROGRESS_TOTAL = 4;
const STEPS: Record<string, number> = { queued: 1, building: 2, deploying: 3 };
/** Longest log line a progress message carries. */
export const PROGRESS_LINE_CHARS = 200;
/** Least time between two notifications that only bring a new log line. */
export const LOG_LINE_INTERVAL_MS = 2000;

export type ProgressState = {
  status: string;
  line: string;
  progress: number;
  /** Lines notified since the status changed. */
  lines: number;
  sentAt: number;
};
export type Progress = { progress: number; total: number; message: string };

/**
 * The progress notification to send for a deployment seen now (status and build log tail), or
 * null: one at each status change, and while the status stays, one for a new last log line at
 * most every LOG_LINE_INTERVAL_MS (e.g. `npm install` under way, or a wait for the registry's
 * maintenance). `progress` always grows, as the protocol requires, and stays below the next
 * status's step. The message is "deployment <status>", then the build log's last line.
 */
export function nextProgress(
  previous: ProgressState | undefined,
  seen: { status: string; buildLogTail: string | null },
  now: number,
): { state: ProgressState; notify: Progress | null } {
  const line = lastLine(seen.buildLogTail);
  const step = STEPS[seen.status] ?? PROGRESS_TOTAL;
  const message = `deployment ${seen.status}${line ? `: ${line}` : ''}`;
  if (!previous || previous.status !== seen.status) {
    const progress = Math.max(step, (previous?.progress ?? 0) + 0.001);
    const state = { status: seen.status, line, progress, lines: 0, sentAt: now };
    return { state, notify: { progress, total: PROGRESS_TOTAL, message } };
  }
  if (line === previous.line || now - previous.sentAt < LOG_LINE_INTERVAL_MS)
    return { state: previous, notify: null };
  // The status's step plus n/(n+1) after the n-th line: always more, never the next step's.
  const lines = previous.lines + 1;
  const progress = Math.floor(previous.progress) + lines / (lines + 1);
  const state = { status: seen.status, line, progress, lines, sentAt: now };
  return { state, notify: { progress, total: PROGRESS_TOTAL, message } };
}

function lastLine(log: string | null): string {
  if (!log) return '';
  const lines = log.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = (lines[i] ?? '').trim();
    if (line) return clip(line, PROGRESS_LINE_CHARS);
  }
  return '';
}
