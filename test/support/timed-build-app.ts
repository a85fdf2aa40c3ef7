import fs from 'node:fs';
import path from 'node:path';

/** The word the timed build prints before its clock readings. */
const MARK = 'timed-build';

/**
 * A Node.js app with no dependencies (nothing to download) whose build step prints the time it
 * started, waits `buildMs`, and prints the time it ended; its server answers `message`. The
 * times are the machine's clock (build steps run on it), so builds can be compared.
 */
export function writeTimedBuildApp(dir: string, message: string, buildMs: number) {
  fs.mkdirSync(dir, { recursive: true });
  const pkg = { name: 'timed-build', version: '1.0.0', private: true };
  fs.writeFileSync(
    path.join(dir, 'package.json'),
    JSON.stringify({ ...pkg, scripts: { build: 'node build.js', start: 'node server.js' } }, null, 2),
  );
  fs.writeFileSync(
    path.join(dir, 'package-lock.json'),
    JSON.stringify({ ...pkg, lockfileVersion: 3, requires: true, packages: { '': pkg } }, null, 2),
  );
  fs.writeFileSync(
    path.join(dir, 'build.js'),
    `console.log('${MARK} start ' + Date.now());
setTimeout(() => console.log('${MARK} end ' + Date.now()), ${buildMs});
`,
  );
  fs.writeFileSync(
    path.join(dir, 'server.js'),
    `require('node:http')
  .createServer((req, res) => res.end(${JSON.stringify(message)} + '\\n'))
  .listen(Number(process.env.PORT || 3000));
`,
  );
}

/** When the timed build step ran, read from a build log; undefined when it did not finish. */
export function buildInterval(lines: string[]): { start: number; end: number } | undefined {
  const at = (what: string) => {
    const found = lines
      .map((l) => new RegExp(`${MARK} ${what} (\\d{13})\\b`).exec(l)?.[1])
      .filter((v) => v !== undefined);
    // A retried build prints again: its last run is the one that produced the image.
    return found.length ? Number(found.at(-1)) : undefined;
  };
  const start = at('start');
  const end = at('end');
  return start !== undefined && end !== undefined ? { start, end } : undefined;
}

/** The most intervals that were running at one moment. */
export function mostAtOnce(intervals: { start: number; end: number }[]): number {
  const events = intervals.flatMap((i) => [
    { t: i.start, d: 1 },
    { t: i.end, d: -1 },
  ]);
  // An end and a start at the same millisecond do not overlap.
  events.sort((a, b) => a.t - b.t || a.d - b.d);
  let now = 0;
  let most = 0;
  for (const e of events) {
    now += e.d;
    most = Math.max(most, now);
  }
  return most;
}
