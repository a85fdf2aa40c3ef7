import { describe, expect, it } from 'vitest';
import { MAX_OWNER_NAME_LENGTH, ownerNameBase, ownerNameCandidate } from '../git/owner-names.ts';
import { serviceHostLabel } from './app-hosts.ts';

const DNS_LABEL = /^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** The longest owner name ensureOwnerName can give: the longest base with the longest suffix. */
const longestOwner = ownerNameCandidate(ownerNameBase(`${'9'.repeat(64)}@example.com`), 999);
/** The longest service or project name the tools accept (a DNS label). */
const longestName = (c: string) => `a${c.repeat(62)}`;

describe('serviceHostLabel', () => {
  it('is "<service>[-<project>]-<owner>"; too long, it keeps the whole owner and a hash of it all', () => {
    expect(serviceHostLabel('web', 'default', 'alice')).toBe('web-alice');
    expect(serviceHostLabel('web', 'staging', 'alice')).toBe('web-staging-alice');
    const label = serviceHostLabel('a'.repeat(60), 'default', 'alice-smith');
    expect(label).toMatch(/^a{42}-[0-9a-f]{8}-alice-smith$/);
    expect(label).toHaveLength(63);
  });

  it('fits the longest valid names into a valid DNS label that ends with the whole owner', () => {
    expect(longestOwner).toHaveLength(MAX_OWNER_NAME_LENGTH);
    for (const [service, project] of [
      [longestName('b'), 'default'],
      [longestName('b'), longestName('c')],
      ['a', longestName('c')],
      [`a${'-b'.repeat(31)}`, `p${'-q'.repeat(31)}`], // dashes where the cut falls
    ] as const) {
      const label = serviceHostLabel(service, project, longestOwner);
      expect(label.length, label).toBeLessThanOrEqual(63);
      expect(label, label).toMatch(DNS_LABEL);
      expect(label.endsWith(`-${longestOwner}`), label).toBe(true);
      expect(label.startsWith(service[0] ?? ''), label).toBe(true);
    }
    // Longer than ensureOwnerName makes: still a valid label, with as much of the owner as fits.
    const label = serviceHostLabel(longestName('b'), 'default', `o${'-w'.repeat(31)}`);
    expect(label).toMatch(DNS_LABEL);
    expect(label).toMatch(/^ab?-[0-9a-f]{8}-o-w-w/);
  });

  it('gives names that differ only past the cut different labels', () => {
    const owner = ownerNameBase('jane.doe@example.com');
    const one = serviceHostLabel(`${longestName('x').slice(0, 62)}1`, 'default', owner);
    const two = serviceHostLabel(`${longestName('x').slice(0, 62)}2`, 'default', owner);
    expect(one).not.toBe(two);
    expect(one.endsWith('-jane-doe') && two.endsWith('-jane-doe')).toBe(true);
  });

  it('is deterministic, and at most 63 characters for every length around the limit', () => {
    expect(serviceHostLabel(longestName('b'), 'default', 'alice')).toBe(
      serviceHostLabel(longestName('b'), 'default', 'alice'),
    );
    for (let n = 1; n <= 63; n++) {
      const label = serviceHostLabel(`s${'e'.repeat(n - 1)}`, 'default', longestOwner);
      expect(label.length).toBeLessThanOrEqual(63);
      expect(label).toMatch(DNS_LABEL);
      expect(label.endsWith(`-${longestOwner}`)).toBe(true);
    }
  });
});
