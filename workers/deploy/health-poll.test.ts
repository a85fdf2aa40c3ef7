import { describe, expect, it } from 'vitest';
import { healthPollDelay } from './health.ts';

describe('healthPollDelay: how often a starting release is checked', () => {
  it('checks often while most apps start, then less often', () => {
    expect(healthPollDelay(0)).toBe(100);
    expect(healthPollDelay(4_999)).toBe(100);
    expect(healthPollDelay(5_000)).toBe(300);
    expect(healthPollDelay(600_000)).toBe(300);
  });
});
