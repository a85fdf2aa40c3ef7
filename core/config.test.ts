import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.ts';

describe('loadConfig', () => {
  it('defaults to the embedded setup under ./.data', () => {
    const c = loadConfig({}, '/srv/app');
    expect(c.dataDir).toBe('/srv/app/.data');
    expect(c.databaseUrl).toBe(`file:${path.join('/srv/app/.data', 'deploy-mcp.db')}`);
    expect(c.port).toBe(8081);
    expect(c.publicUrl).toBe('http://localhost:8081');
    expect(c.temporal.address).toBeUndefined();
  });

  it('takes PostgreSQL and an external Temporal for production', () => {
    const c = loadConfig(
      {
        DEPLOY_MCP_DATABASE_URL: 'postgres://u@db/deploy',
        DEPLOY_MCP_TEMPORAL_ADDRESS: 'temporal:7233',
        DEPLOY_MCP_PUBLIC_URL: 'https://mcp.example.com/',
      },
      '/srv/app',
    );
    expect(c.databaseUrl).toBe('postgres://u@db/deploy');
    expect(c.temporal.address).toBe('temporal:7233');
    expect(c.publicUrl).toBe('https://mcp.example.com');
  });

  it('names every invalid variable in one error; blank values count as unset', () => {
    const bad = () =>
      loadConfig({
        DEPLOY_MCP_PORT: '70000',
        DEPLOY_MCP_DATABASE_URL: 'mysql://x',
        DEPLOY_MCP_LOG_LEVEL: '',
      });
    expect(bad).toThrow(ConfigError);
    expect(bad).toThrow(/DEPLOY_MCP_PORT/);
    expect(bad).toThrow(/DEPLOY_MCP_DATABASE_URL: must start with file:/);
    expect(bad).not.toThrow(/LOG_LEVEL/);
  });
});
