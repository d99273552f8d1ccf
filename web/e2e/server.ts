// Starts a real `dogsearch serve` (all services in one process, the real default model) on a free loopback port.
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { chromium, type Browser } from "playwright-core";

export const REPO = resolve(import.meta.dirname, "../..");
const DOGSEARCH = process.env.DOGSEARCH_BIN ?? join(REPO, ".venv/bin/dogsearch");
export const GALLERY = join(REPO, "samples/gallery");
export const QUERY = join(REPO, "samples/queries/beagle/ILSVRC2012_val_00009664.jpg");

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
// Without the background-networking flags Chromium keeps dialling out of this closed network.
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Headless Chromium from the system (Debian's package), not a download: this network reaches no browser CDN. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium (what .ci/run does), or set CHROMIUM_PATH`);
  }
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

export interface Server {
  url: string;
  dataDir: string;
  /** the secrets of the keys it accepts (none: an open server, the demo) */
  keys: Keys;
  log: () => string;
  stop: () => Promise<void>;
}

export interface Keys {
  admin?: string;
  search?: string;
}

/** Fresh secrets for this run; the server gets only their sha256, as an operator configures it. */
export function makeKeys(): { keys: Required<Keys>; env: Record<string, string> } {
  const secret = () => `dgs_${randomBytes(24).toString("hex")}`;
  const keys = { admin: secret(), search: secret() };
  const sha = (s: string) => createHash("sha256").update(s).digest("hex");
  const entries = [`e2e-admin:admin:${sha(keys.admin)}`, `e2e-viewer:search:${sha(keys.search)}`];
  return { keys, env: { DOGSEARCH_GATEWAY_API_KEYS: entries.join(",") } };
}

// Below Linux's ephemeral range (32768-60999): a port listen(0) handed out, let go until the server binds it, could be
// taken meanwhile by an outgoing connection's local port (as tests/processes.py's free_port).
function portFree(port: number): Promise<boolean> {
  return new Promise((ok) => {
    const srv = createServer();
    srv.once("error", () => ok(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => ok(true)));
  });
}

async function freePort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20000 + Math.floor(Math.random() * 12768); // 20000-32767, at random: runs side by side seldom meet
    if (await portFree(port)) return port;
  }
  throw new Error("no free loopback port in 20000-32767");
}

/** `keys`: started with an admin and a search-only key (their secrets in `Server.keys`); else open. */
export async function startServer(env: Record<string, string> = {}, { keys = false } = {}): Promise<Server> {
  if (!existsSync(DOGSEARCH)) throw new Error(`${DOGSEARCH} not found: run \`make setup\` at the repository root`);
  if (!existsSync(join(REPO, "web/dist/index.html"))) throw new Error("web/dist is not built: run `npm run build`");
  const dataDir = mkdtempSync(join(tmpdir(), "dogsearch-e2e-"));
  const access = keys ? makeKeys() : { keys: {}, env: {} };
  env = { ...access.env, ...env };
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
      if ((await fetch(`${url}/readyz`)).ok) return { url, dataDir, keys: access.keys, log: () => output, stop };
    } catch {
      // not listening yet
    }
    await new Promise((ok) => setTimeout(ok, 500));
  }
  await stop();
  throw new Error(`dogsearch serve did not become ready (exit ${child.exitCode}):\n${output.slice(-4000)}`);
}

/** A call to the server's API as a client with its admin key would make it (no key on an open server). */
export function api(server: Server, path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (server.keys.admin) headers.set("X-API-Key", server.keys.admin);
  return fetch(`${server.url}${path}`, { ...init, headers });
}

/** Adds a photo through the public API, as a user's client would. */
export async function addPhoto(server: Server, path: string, fields: Record<string, string>) {
  const form = new FormData();
  form.append("image", new Blob([readFileSync(path)]), basename(path));
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  const response = await api(server, "/v1/dogs", { method: "POST", body: form });
  if (!response.ok) throw new Error(`adding ${path}: ${response.status} ${await response.text()}`);
  return (await response.json()) as { id: string; payload: Record<string, unknown> };
}
