import { describe, expect, it } from 'vitest';
import { CACHE_SCOPE_ARG, scopeBuildCache } from './dockerfile.ts';

describe('scopeBuildCache', () => {
  it('declares the scope at the top of every stage, and nowhere else', () => {
    const dockerfile = [
      '# syntax=docker/dockerfile:1',
      'FROM deploy-mcp/go AS build',
      'RUN go build -o /out/app .',
      '  from deploy-mcp/runtime',
      'COPY --from=build /out/app /app',
      'RUN echo "FROM inside a command stays"',
      '',
    ].join('\n');
    expect(scopeBuildCache(dockerfile, 'svc-1')).toBe(
      [
        '# syntax=docker/dockerfile:1',
        'FROM deploy-mcp/go AS build',
        `ARG ${CACHE_SCOPE_ARG}=svc-1`,
        'RUN go build -o /out/app .',
        '  from deploy-mcp/runtime',
        `ARG ${CACHE_SCOPE_ARG}=svc-1`,
        'COPY --from=build /out/app /app',
        'RUN echo "FROM inside a command stays"',
        '',
      ].join('\n'),
    );
  });
});
