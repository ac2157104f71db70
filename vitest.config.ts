// Test runner configuration: unit and contract tests beside the code, end-to-end suites in test/.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**'],
    globalSetup: ['./test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Two cores: end-to-end suites start real server processes; keep parallelism modest.
    maxWorkers: 2,
    reporters: ['default'],
  },
});
