import { describe, expect, it } from 'vitest';
import { buildKitTimedOut } from './buildkit.ts';

// Which failed builds buildAndPush tries once more: BuildKit's own deadline before any step
// failed (a busy daemon), never a step of the user's that failed, whatever it printed.
describe('buildKitTimedOut', () => {
  it("is BuildKit's deadline with no failed step", () => {
    expect(
      buildKitTimedOut([
        '#1 [internal] load build definition from Dockerfile',
        'error: failed to solve: DeadlineExceeded: no active session for 9a4bda4e: context deadline exceeded',
      ]),
    ).toBe(true);
    expect(buildKitTimedOut(['error: context deadline exceeded'])).toBe(true);
  });

  it("is not a step's failure, even one that printed the same words", () => {
    expect(
      buildKitTimedOut([
        '#7 [build 3/4] RUN go test ./...',
        '#7 12.3 panic: context deadline exceeded',
        '#7 ERROR: process "/bin/sh -c go test ./..." did not complete successfully: exit code: 2',
        'error: failed to solve: process "/bin/sh -c go test ./..." did not complete successfully: exit code: 2',
      ]),
    ).toBe(false);
    expect(
      buildKitTimedOut(['error: failed to solve: failed to compute cache key: "/missing.txt": not found']),
    ).toBe(false);
    expect(buildKitTimedOut(['#3 12.0 context deadline exceeded', 'the build failed'])).toBe(false);
  });
});
