import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from './log.ts';

describe('createLogger', () => {
  it('redacts secrets by field name, at the top level and one level down', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const log = createLogger({ level: 'info', destination: sink });
    log.info({ token: 'mlg_secret', user: { apiKey: 'dk_live_secret', email: 'a@b.c' } }, 'issued');
    const entry = JSON.parse(lines[0] ?? '{}');
    expect(entry.token).toBe('[redacted]');
    expect(entry.user.apiKey).toBe('[redacted]');
    expect(entry.user.email).toBe('a@b.c');
    expect(lines[0]).not.toContain('secret');
  });
});
