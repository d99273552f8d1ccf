// Starts a real `dogsearch serve` (all services in one process, the real default model) on a free loopback port.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";

export const REPO = resolve(import.meta.dirname, "../..");
const DOGSEARCH = process.env.DOGSEARCH_BIN ?? join(REPO, ".venv/bin/dogsearch");

export interface Server {
  url: string;
  dataDir: string;
  log: () => string;
  stop: () => Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => ok(port));
    });
  });
}

export async function startServer(env: Record<string, string> = {}): Promise<Server> {
  if (!existsSync(DOGSEARCH)) throw new Error(`${DOGSEARCH} not found: run \`make setup\` at the repository root`);
  if (!existsSync(join(REPO, "web/dist/index.html"))) throw new Error("web/dist is not built: run `npm run build`");
  const dataDir = mkdtempSync(join(tmpdir(), "dogsearch-e2e-"));
  const port = await freePort();
  let output = "";
  const child: ChildProcess = spawn(
    DOGSEARCH,
    ["serve", "--data-dir", join(dataDir, "data"), "--host", "127.0.0.1", "--port", String(port), "--log-format", "text"],
    { cwd: REPO, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] },
  );
  child.stdout!.on("data", (d) => (output += d));
  child.stderr!.on("data", (d) => (output += d));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((ok) => child.once("exit", ok));
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((ok) => setTimeout(ok, 15_000))]);
      if (child.exitCode === null) child.kill("SIGKILL");
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 180_000; // the real model loads at start
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    try {
      if ((await fetch(`${url}/readyz`)).ok) return { url, dataDir, log: () => output, stop };
    } catch {
      // not listening yet
    }
    await new Promise((ok) => setTimeout(ok, 500));
  }
  await stop();
  throw new Error(`dogsearch serve did not become ready (exit ${child.exitCode}):\n${output.slice(-4000)}`);
}

/** Adds a photo through the public API, as a user's client would. */
export async function addPhoto(url: string, path: string, fields: Record<string, string>) {
  const form = new FormData();
  form.append("image", new Blob([readFileSync(path)]), basename(path));
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  const response = await fetch(`${url}/v1/dogs`, { method: "POST", body: form });
  if (!response.ok) throw new Error(`adding ${path}: ${response.status} ${await response.text()}`);
  return (await response.json()) as { id: string; payload: Record<string, unknown> };
}
