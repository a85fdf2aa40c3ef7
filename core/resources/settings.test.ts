import { describe, expect, it } from 'vitest';
import { offeredResources } from '../../cli/resources.ts';
import { loadConfig } from '../config.ts';

describe('resource settings', () => {
  it('default: the embedded PostgreSQL on 5433, 20 resources per user, backups kept 7 days', () => {
    const c = loadConfig({}, '/srv/app');
    expect(c.resources).toEqual({
      maxPerUser: 20,
      backupRetentionDays: 7,
      postgres: { kind: 'embedded', port: 5433 },
    });
    expect(offeredResources(c)).toEqual({ sqlite: ['local'], postgres: ['local'] });
  });

  it('production: an admin URL, apps connecting to its host unless _APP_HOST says otherwise', () => {
    const admin = 'postgresql://dmcp:secret@db.internal:6432/postgres';
    expect(loadConfig({ DEPLOY_MCP_POSTGRES_ADMIN_URL: admin }).resources.postgres).toEqual({
      kind: 'external',
      adminUrl: admin,
      appHost: 'db.internal:6432',
    });
    const c = loadConfig({
      DEPLOY_MCP_POSTGRES_ADMIN_URL: admin,
      DEPLOY_MCP_POSTGRES_APP_HOST: 'pg.apps:5432',
    });
    expect(c.resources.postgres).toMatchObject({ appHost: 'pg.apps:5432' });
    expect(() => loadConfig({ DEPLOY_MCP_POSTGRES_ADMIN_URL: 'mysql://x' })).toThrow(
      /DEPLOY_MCP_POSTGRES_ADMIN_URL: must be a postgres:\/\/ URL/,
    );
    expect(() => loadConfig({ DEPLOY_MCP_MAX_RESOURCES: '0' })).toThrow(/DEPLOY_MCP_MAX_RESOURCES/);
  });

  it('on Kubernetes: postgres only with an admin URL, no embedded SQLite', () => {
    const k8s = { DEPLOY_MCP_RUNTIME: 'kubernetes', DEPLOY_MCP_KUBECONFIG: '/k/config' };
    expect(offeredResources(loadConfig(k8s))).toEqual({});
    expect(
      offeredResources(loadConfig({ ...k8s, DEPLOY_MCP_POSTGRES_ADMIN_URL: 'postgres://a:b@db/postgres' })),
    ).toEqual({ postgres: ['local'] });
  });

  it('Turso: with an organization and a token, sqlite goes there in the configured regions (any runtime)', () => {
    const turso = { DEPLOY_MCP_TURSO_ORG: 'acme', DEPLOY_MCP_TURSO_API_TOKEN: 'platform-token' };
    const c = loadConfig(turso);
    expect(c.resources.turso).toEqual({
      apiUrl: 'https://api.turso.tech',
      org: 'acme',
      apiToken: 'platform-token',
      groupPrefix: 'deploy-mcp',
      regions: ['aws-us-east-1'],
      tokenExpiration: '52w',
    });
    expect(offeredResources(c)).toEqual({ sqlite: ['aws-us-east-1'], postgres: ['local'] });
    const k8s = { DEPLOY_MCP_RUNTIME: 'kubernetes', DEPLOY_MCP_KUBECONFIG: '/k/config' };
    expect(
      offeredResources(
        loadConfig({ ...k8s, ...turso, DEPLOY_MCP_TURSO_REGIONS: 'aws-eu-west-1,aws-us-east-1' }),
      ),
    ).toEqual({ sqlite: ['aws-eu-west-1', 'aws-us-east-1'] });
    expect(loadConfig({}).resources.turso).toBeUndefined();
    expect(() => loadConfig({ DEPLOY_MCP_TURSO_ORG: 'acme' })).toThrow(/go together/);
    expect(() => loadConfig({ ...turso, DEPLOY_MCP_TURSO_TOKEN_EXPIRATION: 'never' })).toThrow(
      /DEPLOY_MCP_TURSO_TOKEN_EXPIRATION: must be a duration/,
    );
    expect(() => loadConfig({ ...turso, DEPLOY_MCP_TURSO_REGIONS: 'local' })).toThrow(
      /DEPLOY_MCP_TURSO_REGIONS/,
    );
  });
});
