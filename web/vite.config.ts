import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// `npm run dev` proxies the API to a running `dogsearch serve` (default port 8000).
const api = process.env.DOGSEARCH_URL ?? "http://127.0.0.1:8000";

export default defineConfig({
  plugins: [react()],
  server: { proxy: { "/v1": api } },
  test: {
    environment: "jsdom",
    setupFiles: ["./src/test-setup.ts"],
    // a reader away from UTC, whose clock every time shown must follow (not the server's UTC)
    env: { TZ: "Europe/Berlin" },
    include: ["src/**/*.test.{ts,tsx}"],
  },
});
