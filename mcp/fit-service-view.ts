import { answerChars, boundedReason, clip, MAX_ANSWER_CHARS } from './answer-size.ts';
import type { LogTail } from './log-tail.ts';

/** The parts of get_service's answer that can grow past MAX_ANSWER_CHARS. */
type View = {
  env: Record<string, string>;
  note?: string;
  deployment: { reason: string | null; build_log: LogTail; runtime_log: LogTail } | null;
};

/**
 * get_service's answer (also create, redeploy and rollback's), made to fit MAX_ANSWER_CHARS:
 * the reason bounded to a sentence and 20 lines; then, while too long: env larger than a quarter
 * of the answer summarised (names only), log lines clipped, the oldest log lines dropped, env
 * values masked, env names summarised. The note says what was shortened and how to get the rest.
 */
export function fitServiceView<V extends View>(view: V): V {
  const d = view.deployment;
  if (d) d.reason = boundedReason(d.reason);
  const cut: string[] = [];
  const given = view.note;
  // The note is part of the answer: it is rewritten as things are cut, and counted in each check.
  const shortened = (what: string) => {
    cut.push(what);
    view.note = [given, `Shortened to fit ${MAX_ANSWER_CHARS} characters: ${cut.join('; ')}.`]
      .filter(Boolean)
      .join(' ');
  };
  const fits = () => answerChars(view) <= MAX_ANSWER_CHARS;
  const logs = d ? [d.build_log, d.runtime_log] : [];

  // Env is worth at most a quarter of the answer before any log line gives way.
  if (!fits() && answerChars(view.env) > MAX_ANSWER_CHARS / 4) summariseEnv();
  if (!fits()) {
    for (const log of logs) log.lines = log.lines.map((l) => clip(l, 300));
    if (logs.some((l) => l.lines.some((line) => line.endsWith('more characters)'))))
      shortened('long log lines were clipped to 300 characters');
  }
  if (!fits() && d) {
    const dropped = [0, 0];
    // Oldest lines first, from the larger log, a few at a time (bounded by the lines there are),
    // leaving room for the notes that say so.
    while (answerChars(view) > MAX_ANSWER_CHARS - 600) {
      const sizes = logs.map((l) => answerChars(l.lines));
      const i = (sizes[0] ?? 0) >= (sizes[1] ?? 0) ? 0 : 1;
      const log = logs[i];
      if (!log?.lines.length) break;
      const n = Math.max(1, Math.ceil(log.lines.length / 10));
      log.lines = log.lines.slice(n);
      dropped[i] = (dropped[i] ?? 0) + n;
    }
    for (const [i, field] of ['deploy_log_lines', 'runtime_log_lines'].entries()) {
      const log = logs[i];
      if (!log || !dropped[i]) continue;
      log.truncated = true;
      log.note = `${dropped[i]} more line(s) left out to fit the answer; call get_service with a smaller ${field} (and the other log at 0) to read more of this one.`;
      shortened(
        `${dropped[i]} older ${field === 'deploy_log_lines' ? 'build' : 'runtime'} log line(s) left out`,
      );
    }
  }
  if (!fits()) {
    const names = Object.keys(view.env);
    view.env = Object.fromEntries(names.map((k) => [k, '********']));
    if (!fits()) summariseEnv();
    else if (names.length)
      shortened('env values masked to fit: call get_service with include_env and 0 log lines to read them');
  }
  function summariseEnv() {
    const names = Object.keys(view.env);
    if (!names.length) return;
    view.env = {};
    shortened(
      `env not shown: ${names.length} variable(s): ${clip(names.join(', '), 1000)} (get_service with 0 log lines shows more of it)`,
    );
  }
  return view;
}
