import { defineConfig } from "vitest/config";

// End-to-end: a real `dogsearch serve` (real model) and real headless Chromium; one file, run in order.
export default defineConfig({
  test: {
    environment: "node",
    include: ["e2e/**/*.e2e.ts"],
    testTimeout: 60_000,
    hookTimeout: 240_000,
    fileParallelism: false,
  },
});
