import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', '.tools/**', '.data/**'],
    // Integration tests start real daemons (Temporal, BuildKit, PostgreSQL, ...); on a
    // 2-core machine running files one after another is faster and keeps timings honest.
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 180_000,
    pool: 'forks',
  },
});
