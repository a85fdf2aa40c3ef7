import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DomainError } from '../core/errors.ts';
import {
  ambientPlugins,
  missingPlugins,
  missingPluginsMessage,
  parsePlatformArgs,
  requiredPlugins,
} from './platform.ts';

describe('deploy-mcp platform arguments', () => {
  it('takes preview, up or destroy with --stack', () => {
    expect(parsePlatformArgs(['preview', '--stack', 'prod'])).toEqual({
      action: 'preview',
      stack: 'prod',
      yes: false,
    });
    expect(parsePlatformArgs(['up', '--stack=prod-eu.1', '--yes'])).toEqual({
      action: 'up',
      stack: 'prod-eu.1',
      yes: true,
    });
    expect(parsePlatformArgs(['destroy', '--stack', 'x'])).toMatchObject({ action: 'destroy' });
  });

  it('refuses a missing or unknown action, a missing or odd stack name, and unknown flags', () => {
    expect(() => parsePlatformArgs([])).toThrow(
      /usage: deploy-mcp platform preview\|up\|destroy --stack <name>/,
    );
    expect(() => parsePlatformArgs(['refresh', '--stack', 'p'])).toThrow(/unknown action "refresh"/);
    expect(() => parsePlatformArgs(['preview'])).toThrow(/--stack is required/);
    expect(() => parsePlatformArgs(['preview', '--stack', 'a b'])).toThrow(/invalid stack name "a b"/);
    expect(() => parsePlatformArgs(['preview', '--stack', 'p', '--force'])).toThrow(
      /Unknown option '--force'/,
    );
    try {
      parsePlatformArgs(['preview']);
    } catch (err) {
      expect(err).toBeInstanceOf(DomainError);
    }
  });
});

describe('deploy-mcp platform provider plugins', () => {
  it('counts a pulumi-resource-<name> executable on PATH as present (Pulumi runs ambient plugins)', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'plugins-'));
    try {
      writeFileSync(path.join(dir, 'pulumi-resource-kubernetes'), '#!/bin/sh\n', { mode: 0o755 });
      writeFileSync(path.join(dir, 'pulumi-resource-hcloud'), 'not executable', { mode: 0o644 });
      const ambient = ambientPlugins(['hcloud', 'kubernetes'], `/nonexistent${path.delimiter}${dir}`);
      expect(ambient).toEqual(['kubernetes']);
      expect(missingPlugins([], requiredPlugins(), ambient).map((m) => m.name)).toEqual([
        'hcloud',
        'cloudflare',
        'command',
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('needs the plugins of the installed provider SDKs at their versions', () => {
    expect(requiredPlugins()).toEqual([
      { name: 'hcloud', version: '1.41.0' },
      { name: 'cloudflare', version: '6.22.1' },
      { name: 'command', version: '4.5.0' },
      { name: 'kubernetes', version: '4.34.2' },
    ]);
  });

  it('names each missing plugin (wrong version counts as missing) and says why it cannot be had here', () => {
    const installed = [
      { name: 'kubernetes', kind: 'resource' as const, version: '4.34.2' },
      { name: 'cloudflare', kind: 'resource' as const, version: '6.0.0' },
      { name: 'hcloud', kind: 'language' as const, version: '1.41.0' },
    ];
    const missing = missingPlugins(installed, requiredPlugins());
    expect(missing.map((m) => m.name)).toEqual(['hcloud', 'cloudflare', 'command']);
    const message = missingPluginsMessage(missing);
    expect(message).toContain('provider plugins are missing');
    expect(message).toContain(
      'pulumi-resource-hcloud v1.41.0  (pulumi plugin install resource hcloud 1.41.0)',
    );
    expect(message).toContain('pulumi-resource-command v4.5.0');
    expect(message).not.toContain('pulumi-resource-kubernetes');
    expect(message).toMatch(/refuses their upstream modules \(403\)/);
    expect(
      missingPlugins(
        [...installed, { name: 'hcloud', kind: 'resource', version: 'v1.41.0' }],
        requiredPlugins(),
      ).map((m) => m.name),
    ).toEqual(['cloudflare', 'command']);
  });
});
