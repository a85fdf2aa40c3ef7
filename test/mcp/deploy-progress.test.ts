import { describe, expect, it } from 'vitest';
import {
  LOG_LINE_INTERVAL_MS,
  nextProgress,
  PROGRESS_LINE_CHARS,
  PROGRESS_TOTAL,
  type ProgressState,
} from '../../mcp/deploy-progress.ts';

/** Feeds `seen` in order (one poll each, `stepMs` apart) and returns the notifications sent. */
function run(seen: { status: string; buildLogTail: string | null }[], stepMs: number) {
  let state: ProgressState | undefined;
  const sent = [];
  for (const [i, s] of seen.entries()) {
    const next = nextProgress(state, s, i * stepMs);
    state = next.state;
    if (next.notify) sent.push(next.notify);
  }
  return sent;
}

describe("create_service's progress notifications", () => {
  it('says each status change, then the build log newest line at most every 2 s, progress always growing', () => {
    const polls = [
      { status: 'queued', buildLogTail: null },
      { status: 'building', buildLogTail: '' },
      { status: 'building', buildLogTail: '#1 load build definition\n' },
      { status: 'building', buildLogTail: '#1 load build definition\n#2 npm install\n' },
      { status: 'building', buildLogTail: '#1 load build definition\n#2 npm install\n' },
      { status: 'building', buildLogTail: '#1 load build definition\n#2 npm install\n#3 npm run build\n\n' },
      { status: 'deploying', buildLogTail: '#1 …\n#4 pushed image\n' },
      { status: 'active', buildLogTail: '#1 …\n#4 pushed image\n' },
    ];
    const sent = run(polls, LOG_LINE_INTERVAL_MS / 2);
    expect(sent.map((n) => n.message)).toEqual([
      'deployment queued',
      'deployment building',
      // 1 s after the last one: the line waits; 2 s after, it goes.
      'deployment building: #2 npm install',
      'deployment building: #3 npm run build',
      'deployment deploying: #4 pushed image',
      'deployment active: #4 pushed image',
    ]);
    for (const n of sent) expect(n.total).toBe(PROGRESS_TOTAL);
    const progress = sent.map((n) => n.progress);
    for (let i = 1; i < progress.length; i++) expect(progress[i]).toBeGreaterThan(progress[i - 1] as number);
    // Lines never push a step's progress up to the next status's.
    expect(progress.slice(1, 4).every((p) => p >= 2 && p < 3)).toBe(true);
    expect(progress.at(-1)).toBe(PROGRESS_TOTAL);
  });

  it('stays growing over many lines of one status, and clips a long line', () => {
    const polls = Array.from({ length: 60 }, (_, i) => ({
      status: 'building',
      buildLogTail: `line ${i} ${'x'.repeat(i === 59 ? 5000 : 10)}`,
    }));
    const sent = run(polls, LOG_LINE_INTERVAL_MS);
    expect(sent).toHaveLength(60);
    for (let i = 1; i < sent.length; i++)
      expect(sent[i]?.progress).toBeGreaterThan(sent[i - 1]?.progress as number);
    expect(sent.at(-1)?.progress).toBeLessThan(3);
    const last = sent.at(-1)?.message ?? '';
    expect(last.length).toBeLessThan(PROGRESS_LINE_CHARS + 80);
    expect(last).toMatch(/^deployment building: line 59 x+… \(\d+ more characters\)$/);
  });
});
