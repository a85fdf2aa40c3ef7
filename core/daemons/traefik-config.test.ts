import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { routesProvider, traefikConfig } from './traefik.ts';

describe("the embedded Traefik's configuration", () => {
  const config = parse(
    traefikConfig({ web: '127.0.0.1:8080', adminPort: 9000, api: true, providers: routesProvider('/r') }),
  ) as { providers: { providersThrottleDuration: string; file: { directory: string; watch: boolean } } };

  it('watches the routes directory', () => {
    expect(config.providers.file).toEqual({ directory: '/r', watch: true });
  });

  it("applies a route change without Traefik's default 2 s throttle after the last one", () => {
    expect(config.providers.providersThrottleDuration).toBe('100ms');
  });
});
