import { afterEach, describe, expect, it } from 'vitest';
import { childEnv, dropServerSettings, serverSettings } from './child-env.ts';

describe('child process environments', () => {
  const saved = { ...process.env };
  afterEach(() => {
    for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
    Object.assign(process.env, saved);
    delete (globalThis as Record<symbol, unknown>)[Symbol.for('deploy-mcp.settings')];
  });

  it('passes on only PATH, HOME, locale, time zone and temp dir, plus what the caller gives', () => {
    process.env.DEPLOY_MCP_SECRET_KEY = 'k';
    process.env.AWS_SECRET_ACCESS_KEY = 'aws';
    process.env.LANG = 'C.UTF-8';
    const env = childEnv({ CONTAINERS_CONF: '/x', UNSET: undefined });
    expect(env).toMatchObject({ LANG: 'C.UTF-8', CONTAINERS_CONF: '/x' });
    expect(env.PATH).toBe(process.env.PATH);
    expect(
      Object.keys(env).every((n) =>
        ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR', 'CONTAINERS_CONF'].includes(n),
      ),
    ).toBe(true);
  });

  it('hands the settings the preload took out of the environment to the config, and drops the rest', () => {
    (globalThis as Record<symbol, unknown>)[Symbol.for('deploy-mcp.settings')] = {
      DEPLOY_MCP_SECRET_KEY: 'k',
    };
    process.env.DEPLOY_MCP_PORT = '9000';
    expect(serverSettings()).toEqual({ DEPLOY_MCP_SECRET_KEY: 'k', DEPLOY_MCP_PORT: '9000' });
    dropServerSettings();
    expect(Object.keys(process.env).filter((n) => n.startsWith('DEPLOY_MCP_'))).toEqual([]);
  });
});
