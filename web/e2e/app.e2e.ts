// End to end: the built UI in real headless Chromium against a real `dogsearch serve` (real model, real HTTP),
// started with API keys, as a deployment is: the tests sign in through the UI. open.e2e.ts: the demo, without keys.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, type BrowserContext, type Page, type Response, type Route } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { addPhoto, api, GALLERY, launchChromium, QUERY, REPO, type Server, startServer } from "./server";

const SHOTS = join(import.meta.dirname, "screenshots");
const BREEDS = ["beagle", "Samoyed", "dingo"];
/** A result's way to its match page: "Compare" where it is unlikely the same dog. */
const MATCH_LINK = /^(Why it matches|Compare)$/;

let server: Server;
let browser: Browser;
let desktop: BrowserContext;
let page: Page;
let bulkDir: string;
const pageErrors: string[] = [];

function photos(breed: string, n: number): string[] {
  return readdirSync(join(GALLERY, breed)).sort().slice(0, n).map((f) => join(GALLERY, breed, f));
}

async function newPage(context: BrowserContext): Promise<Page> {
  const p = await context.newPage();
  p.setDefaultTimeout(15_000);
  p.on("pageerror", (e) => pageErrors.push(String(e)));
  // the gateway's Content-Security-Policy: anything of the UI's own that it refuses is a bug of either
  p.on("console", (m) => {
    if (m.type() === "error" && m.text().includes("Content Security Policy")) pageErrors.push(m.text());
  });
  return p;
}

const shot = (p: Page, name: string) => p.screenshot({ path: join(SHOTS, name), fullPage: true });

/** A fresh load of a page of the UI (a new document: no state left from the test before). */
async function open(p: Page, hash: string) {
  await p.goto("about:blank");
  await p.goto(`${server.url}/${hash}`);
}

async function searchWith(p: Page, file: string | { name: string; mimeType: string; buffer: Buffer }, timeout?: number) {
  await open(p, "#/search");
  await p.getByLabel(/^Choose (a|another) photo$/).setInputFiles(file, { timeout });
}

/** The natural widths of the photos `selector` finds once loaded (a photo that failed: 0). Signed in, photos come
 * from fetches with the key, with a placeholder until then: wait for those too, and for at least `min` photos. */
async function imagesLoaded(p: Page, selector: string, min = 0): Promise<number[]> {
  await p.waitForFunction(
    ([sel, n]) =>
      !document.querySelector("[data-image-loading]") &&
      document.querySelectorAll(sel).length >= n &&
      [...document.querySelectorAll<HTMLImageElement>(sel)].every((i) => i.complete),
    [selector, min] as const,
  );
  const failed = await p.locator("[data-image-failed]").count();
  return [...(await p.$$eval(selector, (imgs) => (imgs as HTMLImageElement[]).map((i) => i.naturalWidth))), ...Array(failed).fill(0)];
}

/** A plain grey JPEG drawn by the browser: a photo with no dog in it. */
async function photoWithoutDog(p: Page): Promise<{ name: string; mimeType: string; buffer: Buffer }> {
  const dataUrl = await p.evaluate(() => {
    const canvas = document.createElement("canvas");
    canvas.width = 320;
    canvas.height = 240;
    const g = canvas.getContext("2d")!;
    g.fillStyle = "#8a8a8a";
    g.fillRect(0, 0, canvas.width, canvas.height);
    return canvas.toDataURL("image/jpeg", 0.9);
  });
  return { name: "grey-wall.jpg", mimeType: "image/jpeg", buffer: Buffer.from(dataUrl.split(",")[1], "base64") };
}

/** A search's form with one photo. */
function formOf(path: string): FormData {
  const form = new FormData();
  form.append("image", new Blob([readFileSync(path)]), "query.jpg");
  return form;
}

/** Signs in through the page's sign-in prompt (a fresh tab has no key: the search page asks for one). */
async function signIn(p: Page, key: string, name: string) {
  await p.goto(`${server.url}/#/search`);
  const prompt = p.getByTestId("sign-in-prompt");
  await prompt.getByLabel("API key").fill(key);
  await prompt.getByRole("button", { name: "Sign in" }).click();
  await p.getByTestId("signed-in-as").getByText(name).waitFor();
}

// Whether this server's pose service answers (it is optional: weights may be absent). Set
// DOGSEARCH_E2E_REQUIRE_POSE=1 to make its absence a failure instead of a checked "pose unavailable" note.
let poseState = 0;
let poseReason = "";
async function poseAvailable(): Promise<boolean> {
  if (!poseState) {
    const dog = (await (await api(server, "/v1/dogs?limit=1")).json()).items[0];
    const response = await api(server, `/v1/dogs/${dog.id}/pose`, { signal: AbortSignal.timeout(120_000) });
    poseState = response.status;
    poseReason = poseState === 200 ? "" : ((await response.json().catch(() => ({}))).detail ?? "");
    console.log(`pose API: ${poseState}${poseReason ? ` (${poseReason})` : ""}`);
  }
  if (process.env.DOGSEARCH_E2E_REQUIRE_POSE === "1") expect(poseState, poseReason).toBe(200);
  return poseState === 200;
}

beforeAll(async () => {
  browser = await launchChromium(); // first: no Chromium fails before a server starts
  mkdirSync(SHOTS, { recursive: true });
  server = await startServer(
    // a folder for the bulk job test, the only one jobs may read
    { DOGSEARCH_JOBS_ALLOWED_ROOTS: JSON.stringify([(bulkDir = mkdtempSync(join(tmpdir(), "dogsearch-bulk-")))]) },
    { keys: true },
  );
  for (const breed of BREEDS) {
    for (const [i, path] of photos(breed, 3).entries()) await addPhoto(server, path, { breed, name: `${breed} ${i + 1}` });
  }
  desktop = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await newPage(desktop);
});

afterEach(async (ctx) => {
  if (ctx.task.result?.state === "fail") await shot(page, `FAILED-${ctx.task.name.replace(/\W+/g, "-")}.png`);
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
  if (bulkDir) rmSync(bulkDir, { recursive: true, force: true });
  expect(pageErrors, "uncaught errors in the page").toEqual([]);
});

describe("dogsearch web UI", () => {
  it("serves the UI at / and keeps the API under /v1, for signed-in users only", async () => {
    expect((await fetch(`${server.url}/v1/dogs?limit=1`)).status).toBe(401);
    expect((await (await api(server, "/v1/dogs?limit=1")).json()).total).toBe(9);
    await page.goto(server.url + "/");
    await page.getByRole("heading", { name: "Find similar dogs" }).waitFor();
    await expect(page.title()).resolves.toBe("Search · dogsearch");
    // an anonymous visitor: asked to sign in, offered nothing else
    const prompt = page.getByTestId("sign-in-prompt");
    await prompt.getByText("This server needs an API key.").waitFor();
    expect(await page.getByLabel("Choose a photo").count()).toBe(0);
    const nav = page.getByRole("navigation", { name: "Main" });
    expect(await nav.getByRole("link").allTextContents()).toEqual(["Search", "Gallery"]);
    await open(page, "#/gallery");
    await prompt.waitFor();
    expect(await page.getByTestId("gallery-dog").count()).toBe(0);
    // a made-up key is refused, and not kept
    await prompt.getByLabel("API key").fill("dgs_made_up");
    await prompt.getByRole("button", { name: "Sign in" }).click();
    await prompt.getByRole("alert").getByText("That key was not accepted").waitFor();
    await shot(page, "sign-in-refused-desktop.png");
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);

    await signIn(page, server.keys.admin!, "e2e-admin");
    await expect(page.getByTestId("signed-in-as").textContent()).resolves.toBe("signed in as e2e-admin (admin)");
    expect(await nav.getByRole("link").allTextContents()).toEqual(["Search", "Add a dog", "Gallery", "Bulk jobs", "Alerts"]);
    expect(await page.evaluate(() => localStorage.length)).toBe(0); // the session only
    await page.getByLabel("Choose a photo").waitFor();
  });

  it("searches with a photo and shows the matches with scores", async () => {
    await searchWith(page, QUERY);
    const cards = page.getByTestId("result");
    await cards.first().waitFor();
    expect(await cards.count()).toBe(9);
    const scores = (await page.locator(".score-value").allTextContents()).map(Number);
    expect(scores).toHaveLength(9);
    expect(scores).toEqual([...scores].sort((a, b) => b - a));
    // the default model ships a calibration: each card says how likely it is the same dog
    const judged = await page.getByTestId("same-dog").allTextContents();
    expect(judged).toHaveLength(9);
    expect(judged.every((t) => /(likely the same dog|possibly the same dog|unlikely to be the same dog) \([<>]?\d+ %\)/.test(t))).toBe(true);
    // the real model puts a beagle first for a beagle photo
    await expect(cards.first().textContent()).resolves.toContain("beagle");
    expect((await imagesLoaded(page, "[data-testid=result] img")).every((w) => w > 0)).toBe(true);
    console.log("beagle query scores:", (await page.locator("[data-testid=result] .card-title").allTextContents()).map((t, i) => `${t} ${scores[i]}`).join(", "));
    await shot(page, "search-desktop.png");
  });

  it("filters by breed", async () => {
    await page.getByLabel("Breed").fill("Samoyed");
    await page.getByRole("button", { name: "Search again" }).click();
    await page.getByText(/^3 matches in /).waitFor();
    const titles = await page.locator("[data-testid=result] .card-title a").allTextContents();
    expect(titles.every((t) => t.startsWith("Samoyed"))).toBe(true);
    await page.getByLabel("Other fields").fill("name=Samoyed 2");
    await page.getByRole("button", { name: "Search again" }).click();
    await page.getByText(/^1 match in /).waitFor();
    await page.getByLabel("Breed").fill("");
    await page.getByLabel("Other fields").fill("");
    await page.getByRole("button", { name: "Search again" }).click();
    await page.getByText(/^9 matches in /).waitFor();
  });

  it("opens a match: both photos side by side, the similarity in words, the pose", async () => {
    const posed: Promise<{ dogs: { box: number[]; score: number }[] }>[] = []; // the query's pose (JSON)
    const onResponse = (r: Response) => {
      const url = new URL(r.url());
      if (url.pathname === "/v1/pose" && !url.search.includes("render") && r.ok()) posed.push(r.json());
    };
    page.on("response", onResponse);
    const first = page.getByTestId("result").first();
    await first.getByRole("link", { name: MATCH_LINK }).click();
    await page.getByRole("heading", { name: /^(Why beagle \d matches|How beagle \d compares)$/ }).waitFor();
    expect((await imagesLoaded(page, ".side img", 2)).every((w) => w > 0)).toBe(true);
    expect(await page.locator(".side img").count()).toBe(2);
    const explain = page.getByRole("region", { name: "The similarity in plain words" });
    // The UI must show what the pose API gives: overlays and a comparison when it answers, else its reason.
    if (await poseAvailable()) {
      // query: POST /v1/pose?render=true; match: GET /v1/dogs/{id}/pose.png
      await page.getByTestId("pose-overlay").nth(1).waitFor({ timeout: 60_000 });
      expect((await imagesLoaded(page, "[data-testid=pose-overlay]")).filter((w) => w > 0)).toHaveLength(2);
      await explain.getByText(/^Posture: /).waitFor();
      await explain.getByText(/^Proportions: /).waitFor();
    } else {
      await page.getByTestId("pose-unavailable").nth(1).waitFor({ timeout: 60_000 });
      await expect(page.getByTestId("pose-unavailable").first().textContent()).resolves.toContain(poseReason);
      await explain.getByText("Posture and proportions cannot be compared: pose analysis is unavailable.").waitFor();
    }
    // the searched dog outlined on the query side, and its pose asked for in its box
    expect(await page.locator(".side").first().locator("[data-testid=dog-box][data-current]").count()).toBe(1);
    page.off("response", onResponse);
    if (await poseAvailable()) {
      // the pose of the dog searched for, in the box the search found it in (score 1: given, not detected)
      const [query] = await Promise.all(posed);
      expect(query.dogs).toHaveLength(1);
      expect(query.dogs[0].score).toBe(1);
    }
    await expect(explain.textContent()).resolves.toMatch(/Score 0\.\d{3} \(/);
    await expect(explain.textContent()).resolves.toContain("most of its closest matches are beagle, and so is this one");
    await shot(page, "match-desktop.png");
  });

  it("still shows both photos, with a note, when the pose service is missing", async () => {
    const notFound = (route: Route) =>
      route.fulfill({ status: 404, contentType: "application/json", body: '{"detail":"Not Found"}' });
    await page.route(/\/v1\/(pose|dogs\/[^/]+\/pose(\.png)?)(\?.*)?$/, notFound);
    await page.reload(); // a reload drops the query photo: the match side must still work
    await page.getByTestId("pose-unavailable").waitFor();
    await page.getByText("The searched photo is not in this tab any more").waitFor();
    expect((await imagesLoaded(page, ".side img")).every((w) => w > 0)).toBe(true);
    await expect(page.getByTestId("pose-unavailable").textContent()).resolves.toContain("this server has no pose service");
    await searchWith(page, QUERY);
    await page.getByTestId("result").first().getByRole("link", { name: MATCH_LINK }).click();
    await page.getByTestId("pose-unavailable").nth(1).waitFor();
    expect((await imagesLoaded(page, ".side img")).filter((w) => w > 0)).toHaveLength(2);
    const explain = page.getByRole("region", { name: "The similarity in plain words" });
    await explain.getByText("Posture and proportions cannot be compared: pose analysis is unavailable.").waitFor();
    await shot(page, "match-no-pose-desktop.png");
    await page.unrouteAll();
  });

  it("shows more like any result", async () => {
    await page.getByRole("link", { name: "← Back to the results" }).click();
    const second = page.getByTestId("result").nth(1);
    const title = (await second.locator(".card-title a").textContent())!;
    await second.getByRole("button", { name: "More like this" }).click();
    await page.getByText(`More like ${title}`).waitFor();
    await page.getByText(/^8 matches in /).waitFor(); // everything but the dog itself
    const titles = await page.locator("[data-testid=result] .card-title a").allTextContents();
    expect(titles).not.toContain(title);
    await page.getByTestId("result").first().getByRole("link", { name: MATCH_LINK }).click();
    await page.getByRole("heading", { name: title }).waitFor(); // the query side is that stored dog
  });

  it("outlines the dog found in the query photo and says which breed it looks like", async () => {
    await searchWith(page, QUERY);
    await page.getByTestId("result").first().waitFor();
    // the searched dog's box, drawn over the photo as it is shown (scaled from the photo's pixels)
    const current = page.getByTestId("photo-picker").locator("[data-testid=dog-box][data-current]");
    await current.waitFor();
    const photo = (await page.locator(".picker .photo-boxes-frame img").boundingBox())!;
    const box = (await current.boundingBox())!;
    expect(box.x).toBeGreaterThanOrEqual(photo.x - 1);
    expect(box.y).toBeGreaterThanOrEqual(photo.y - 1);
    expect(box.x + box.width).toBeLessThanOrEqual(photo.x + photo.width + 1);
    expect(box.y + box.height).toBeLessThanOrEqual(photo.y + photo.height + 1);
    // the beagle is most of this photo
    expect(box.width * box.height).toBeGreaterThan(0.1 * photo.width * photo.height);
    const guess = (await page.getByTestId("breed-guess").textContent())!;
    console.log("beagle query:", guess, `${await page.getByTestId("dog-box").count()} dog(s) boxed`);
    expect(guess).toMatch(/Looks like: .*\bbeagle \d+ %/);
    await shot(page, "search-boxes-desktop.png");
  });

  it("says when a photo shows no dog, and what it seems to show", async () => {
    const blank = await photoWithoutDog(page);
    await searchWith(page, blank);
    const alert = page.getByRole("alert").filter({ hasText: /^No dog found in this photo\./ });
    await alert.waitFor();
    console.log("grey photo:", await alert.textContent());
    expect(await page.getByTestId("result").count()).toBe(0);
    expect(await page.getByTestId("dog-box").count()).toBe(0);
    await shot(page, "search-no-dog-desktop.png");
    // adding it: said as soon as the photo is chosen, and the Add button stays disabled
    await open(page, "#/add");
    await page.getByLabel("Choose a photo").setInputFiles(blank);
    await page.getByRole("status").filter({ hasText: /^No dog found in this photo\./ }).waitFor();
    expect(await page.getByRole("button", { name: "Add dog" }).isDisabled()).toBe(true);
  });

  it("searches for a dog the user marks by hand where none was found", async () => {
    await searchWith(page, await photoWithoutDog(page));
    await page.getByRole("alert").filter({ hasText: /^No dog found in this photo\./ }).waitFor();
    await page.getByRole("button", { name: "Mark the dog yourself" }).click();
    await page.waitForFunction(() => (document.querySelector(".mark-dog-frame img") as HTMLImageElement)?.naturalWidth > 0);
    // drag from a quarter of the way in to three quarters, as a mouse does
    const shown = (await page.getByAltText("Your photo: drag a box around the dog").boundingBox())!;
    await page.mouse.move(shown.x + shown.width * 0.25, shown.y + shown.height * 0.25);
    await page.mouse.down();
    await page.mouse.move(shown.x + shown.width * 0.5, shown.y + shown.height * 0.5, { steps: 4 });
    await page.mouse.move(shown.x + shown.width * 0.75, shown.y + shown.height * 0.75, { steps: 4 });
    await page.mouse.up();
    // drawn where it was dragged, on the photo
    const drawn = (await page.getByTestId("marked-box").boundingBox())!;
    expect(Math.abs(drawn.x - (shown.x + shown.width * 0.25))).toBeLessThan(3);
    expect(Math.abs(drawn.width - shown.width * 0.5)).toBeLessThan(3);
    await shot(page, "search-mark-desktop.png");
    await page.getByRole("button", { name: "Search for this dog" }).click();
    await page.getByTestId("result").first().waitFor();
    expect(await page.getByTestId("breed-guess").textContent()).toContain("Searching with the dog you marked.");
    // the server's box for the marked dog, drawn over the photo: the middle half, where it was marked
    const photo = (await page.locator(".picker .photo-boxes-frame img").boundingBox())!;
    const box = (await page.getByTestId("photo-picker").locator("[data-testid=dog-box]").boundingBox())!;
    for (const [got, want] of [
      [box.x - photo.x, photo.width * 0.25],
      [box.y - photo.y, photo.height * 0.25],
      [box.width, photo.width * 0.5],
      [box.height, photo.height * 0.5],
    ]) {
      expect(Math.abs(got - want)).toBeLessThan(0.04 * photo.width);
    }
  });

  it("adds a dog, opens its page, deletes it after confirming", async () => {
    await open(page, "#/add");
    await page.getByLabel("Choose a photo").setInputFiles(photos("golden retriever", 1)[0]);
    // the detector's suggestion is offered, not filled in
    await page.getByRole("button", { name: /^Use suggestion: .+ \(\d+ %\)$/ }).waitFor();
    expect(await page.getByLabel("Breed").inputValue()).toBe("");
    await page.getByLabel("Name").fill("Rex");
    await page.getByLabel("Breed").fill("golden retriever");
    // notes of several lines, one of them looking like markup
    const notes = "friendly, likes water\n<b>shy</b> with strangers\n  answers to Rexy";
    await page.getByLabel("Notes").fill(notes);
    await page.getByRole("button", { name: "Add dog" }).click();
    const added = page.getByRole("status").filter({ hasText: /^Added/ });
    await added.waitFor();
    // the form it was sent from is emptied: the keyboard goes on from what it came to, not from the page's start
    expect(await added.evaluate((el) => el === document.activeElement)).toBe(true);
    await page.getByRole("link", { name: "Rex" }).click();
    await page.getByRole("heading", { name: "Rex" }).waitFor();
    const shownNotes = page.locator("dd", { hasText: "friendly, likes water" });
    // its lines kept, as text (a form's upload sends a line break as CRLF)
    expect((await shownNotes.innerText()).replaceAll("\r\n", "\n")).toBe(notes);
    expect(await shownNotes.locator("b").count()).toBe(0);
    expect((await imagesLoaded(page, ".dog-photo")).every((w) => w > 0)).toBe(true);
    const id = page.url().split("/dogs/")[1];
    await expect(page.title()).resolves.toBe("Rex · dogsearch");
    await shot(page, "dog-desktop.png");

    // its owner changes its name and reports it found, on its page
    await page.getByRole("button", { name: "Edit name, breed, notes and report" }).click();
    const edit = page.getByRole("form", { name: "Edit this dog" });
    await edit.getByLabel("Name").fill("Rex the second");
    await edit.getByLabel("Status").selectOption("found");
    await edit.getByLabel("Where it was seen").fill("52.52, 13.405");
    await edit.getByRole("button", { name: "Save" }).click();
    await page.getByRole("heading", { name: "Rex the second" }).waitFor();
    await page.getByTestId("report").getByText("Found").waitFor();
    expect((await imagesLoaded(page, ".photo-thumb", 1)).every((w) => w > 0)).toBe(true); // its photos stay
    const edited = (await (await api(server, `/v1/dogs/${id}`)).json()).payload;
    // the form sent the notes' line breaks as CRLF: the server keeps them as LF, as the edit form has them
    expect([edited.name, edited.status, edited.location, edited.notes]).toEqual(
      ["Rex the second", "found", { lat: 52.52, lon: 13.405 }, notes]);

    // its owner marks where the dog is (the left half of the photo): stored, and drawn on the page
    await page.getByRole("button", { name: "Not the right dog? Mark it" }).click();
    await page.waitForFunction(() => (document.querySelector(".mark-dog-frame img") as HTMLImageElement)?.naturalWidth > 0);
    const shown = (await page.getByAltText("Your photo: drag a box around the dog").boundingBox())!;
    await page.mouse.move(shown.x + 2, shown.y + 2);
    await page.mouse.down();
    await page.mouse.move(shown.x + shown.width / 2, shown.y + shown.height - 2, { steps: 5 });
    await page.mouse.up();
    await page.getByRole("button", { name: "Save this box" }).click();
    await page.getByText(/The dog's box is saved/).waitFor();
    const stored = (await (await api(server, `/v1/dogs/${id}`)).json()).payload;
    expect(stored.marked).toBe(true);
    expect(stored.box[0]).toBeLessThan(0.05 * stored.width);
    expect(Math.abs(stored.box[2] - stored.width / 2)).toBeLessThan(0.05 * stored.width);
    await page.getByRole("button", { name: "Mark the dog again" }).waitFor();

    await page.getByRole("button", { name: "Delete…" }).click();
    await page.getByRole("group", { name: "Confirm delete" }).waitFor();
    await page.getByRole("button", { name: "Cancel" }).click();
    expect((await api(server, `/v1/dogs/${id}`)).status).toBe(200);
    await page.getByRole("button", { name: "Delete…" }).click();
    await page.keyboard.press("Enter"); // focus lands on "Yes, delete"
    await page.getByText("was deleted").waitFor();
    expect((await api(server, `/v1/dogs/${id}`)).status).toBe(404);
  });

  it("adds both dogs of a photo of two, the photo picked once", async () => {
    // a beagle beside a Samoyed, drawn by the browser into one photo
    const sources = [photos("beagle", 1)[0], photos("Samoyed", 1)[0]].map(
      (f) => `data:image/jpeg;base64,${readFileSync(f).toString("base64")}`,
    );
    const dataUrl = await page.evaluate(async (srcs) => {
      const imgs = await Promise.all(srcs.map(async (src) => {
        const img = new Image();
        img.src = src;
        await img.decode();
        return img;
      }));
      const height = 300;
      const widths = imgs.map((img) => Math.round((img.width * height) / img.height));
      const canvas = document.createElement("canvas");
      canvas.width = widths[0] + widths[1];
      canvas.height = height;
      const g = canvas.getContext("2d")!;
      imgs.forEach((img, i) => g.drawImage(img, i ? widths[0] : 0, 0, widths[i], height));
      return canvas.toDataURL("image/jpeg", 0.92);
    }, sources);
    const two = { name: "two-dogs.jpg", mimeType: "image/jpeg", buffer: Buffer.from(dataUrl.split(",")[1], "base64") };
    await open(page, "#/add");
    await page.getByLabel("Choose a photo").setInputFiles(two);
    await page.getByText(/^2 dogs in this photo: adding dog 1\./).waitFor();
    await page.getByLabel("Name").fill("First of two");
    await page.getByRole("button", { name: "Add dog" }).click();
    const next = page.getByRole("status").filter({ hasText: /^Added First of two\. Next, dog 2 of this photo/ });
    await next.waitFor();
    expect(await next.evaluate((el) => el === document.activeElement)).toBe(true);
    const first = (await next.getByRole("link").getAttribute("href"))!.split("/dogs/")[1];
    // the other dog is chosen: one press adds it, the photo not picked again
    expect(await page.getByRole("button", { name: "Dog 2" }).getAttribute("aria-pressed")).toBe("true");
    await shot(page, "add-second-dog-desktop.png");
    await page.getByLabel("Name").fill("Second of two");
    await page.getByRole("button", { name: "Add dog" }).click();
    const done = page.getByRole("status").filter({ hasText: /^Added Second of two\.$/ });
    await done.waitFor();
    const second = (await done.getByRole("link").getAttribute("href"))!.split("/dogs/")[1];
    await page.getByLabel("Choose a photo").waitFor({ state: "attached" }); // done with the photo
    const payload = async (id: string) => (await (await api(server, `/v1/dogs/${id}`)).json()).payload;
    const [a, b] = await Promise.all([first, second].map(payload));
    expect(a.sha256).toBe(b.sha256);
    expect(a.box).not.toEqual(b.box); // each its own dog of the photo
    for (const id of [first, second]) expect((await api(server, `/v1/dogs/${id}`, { method: "DELETE" })).status).toBe(204);
  });

  it("keeps several photos of a dog: adds one on its page, finds the dog by it and by two photos, removes it", async () => {
    const [first, second, third] = photos("English foxhound", 3);
    const dog = await addPhoto(server, first, { name: "Pip", breed: "English foxhound" });
    await open(page, `#/dogs/${dog.id}`);
    await page.getByRole("heading", { name: "1 photo" }).waitFor();
    await page.getByLabel("Add photos of this dog").setInputFiles(second);
    await page.getByRole("status").getByText("Photo added.").waitFor();
    await page.getByRole("heading", { name: "2 photos" }).waitFor();
    expect((await imagesLoaded(page, ".photo-thumb", 2)).every((w) => w > 0)).toBe(true);
    await shot(page, "dog-photos.png");

    // found by its second photo, once, with that photo shown
    await searchWith(page, second);
    const top = page.getByTestId("result").first();
    await top.getByRole("link", { name: "Pip", exact: true }).waitFor();
    expect(await page.getByTestId("result").getByRole("link", { name: "Pip", exact: true }).count()).toBe(1);
    const photoId = (await (await api(server, `/v1/dogs/${dog.id}`)).json()).photos[1].id;
    const answer = await (await api(server, "/v1/search", { method: "POST", body: formOf(second) })).json();
    expect(answer.results[0].photo_id).toBe(photoId);

    // two photos of the dog in one search
    await page.getByLabel("Add more photos of the same dog to the search").setInputFiles(first);
    await page.getByTestId("query-photos").getByText(/Searching with 2 photos/).waitFor();
    await top.getByRole("link", { name: "Pip", exact: true }).waitFor();

    await open(page, `#/dogs/${dog.id}`);
    await page.getByRole("button", { name: "Remove photo 2" }).click();
    await page.getByRole("status").getByText("Photo removed.").waitFor();
    await page.getByRole("heading", { name: "1 photo" }).waitFor();
    expect(await page.getByRole("button", { name: /Remove photo/ }).count()).toBe(0); // not the last one
    expect((await (await api(server, `/v1/dogs/${dog.id}`)).json()).photos).toHaveLength(1);

    // another dog's photo: refused, with a link to that dog (the server names it in `dog_id`)
    const other = await addPhoto(server, third, { name: "Rover" });
    await page.getByLabel("Add photos of this dog").setInputFiles(third);
    const refused = page.getByTestId("photo-added").filter({ hasText: "This photo is already another dog's" });
    await refused.getByRole("link", { name: "another dog's" }).click();
    await page.getByRole("heading", { name: "Rover" }).waitFor();
    expect(page.url()).toContain(`#/dogs/${other.id}`);
    for (const id of [dog.id, other.id]) expect((await api(server, `/v1/dogs/${id}`, { method: "DELETE" })).status).toBe(204);
  });

  it("reports a lost dog, then finds it from a found dog's photo, near where it was found", async () => {
    const [lostPhoto, foundPhoto] = photos("golden retriever", 2);
    await open(page, "#/add");
    await page.getByLabel("Choose a photo").setInputFiles(lostPhoto);
    await page.getByRole("button", { name: /^Use suggestion/ }).waitFor();
    await page.getByLabel("Name").fill("Goldie");
    const report = page.getByRole("group", { name: /Lost & found report/ });
    await report.getByLabel("Status").selectOption("lost");
    await report.getByLabel("Where it was seen").fill("52.52, 13.405"); // Berlin
    await report.getByLabel("When it was seen").fill("2026-11-30T18:05");
    await page.getByRole("button", { name: "Add dog" }).click();
    await page.getByRole("status").getByText("Added").waitFor();
    const id = (await page.getByRole("link", { name: "Goldie" }).getAttribute("href"))!.split("/dogs/")[1];
    const stored = (await (await api(server, `/v1/dogs/${id}`)).json()).payload;
    expect([stored.status, stored.location]).toEqual(["lost", { lat: 52.52, lon: 13.405 }]);

    // someone found a golden retriever in Potsdam: lost dogs within 50 km (the filters are read when the photo is picked)
    await open(page, "#/search");
    const filters = page.getByRole("group", { name: "Lost & found" });
    await filters.getByLabel("I have").selectOption("found");
    await filters.getByLabel("Near").fill("52.39, 13.065");
    await filters.getByLabel("Within (km)").fill("50");
    await page.getByLabel("Choose a photo").setInputFiles(foundPhoto);
    await page.getByText(/^1 match in [\d.]+ m?s \(server: [\d.]+ m?s\), among dogs reported lost$/).waitFor();
    const card = page.getByTestId("result").first();
    await expect(card.locator(".card-title a").textContent()).resolves.toBe("Goldie");
    await expect(card.getByTestId("report").textContent()).resolves.toMatch(/^Lost27\.\d km awayseen \d+ (Nov|Dec) 2026, /);
    await shot(page, "lost-and-found-desktop.png");
    // farther away than 20 km: nobody
    await filters.getByLabel("Within (km)").fill("20");
    await page.getByRole("button", { name: "Search again" }).click();
    await page.getByText(/No dogs match/).waitFor();
    expect((await api(server, `/v1/dogs/${id}`, { method: "DELETE" })).status).toBe(204);
  });

  it("fills a report in from where and when a phone's photo was taken, for the user to check", async () => {
    await open(page, "#/add");
    await page.getByLabel("Choose a photo").setInputFiles(join(REPO, "tests/fixtures/phone/iphone-24mp.heic"));
    await page.getByRole("button", { name: /^Use suggestion/ }).waitFor(); // a 24 MP HEIC: the dog found in it
    const report = page.getByRole("group", { name: /Lost & found report/ });
    await report.getByLabel("Status").selectOption("found");
    await report.getByRole("button", { name: "Where and when from the photo" }).click();
    await report.getByText("Filled in from the photo: where and when it was taken.").waitFor();
    await expect(report.getByLabel("Where it was seen").inputValue()).resolves.toBe("52.52, 13.405");
    const when = await report.getByLabel("When it was seen").inputValue();
    expect(new Date(when).toISOString()).toBe("2026-11-30T17:05:00.000Z"); // 18:05 in Berlin, to the minute
    await shot(page, "report-from-photo-desktop.png");
    await page.getByLabel("Name").fill("Found in Berlin");
    await page.getByRole("button", { name: "Add dog" }).click();
    await page.getByRole("status").getByText("Added").waitFor();
    const id = (await page.getByRole("link", { name: "Found in Berlin" }).getAttribute("href"))!.split("/dogs/")[1];
    const stored = (await (await api(server, `/v1/dogs/${id}`)).json()).payload;
    expect([stored.status, stored.location, stored.seen_at]).toEqual(
      ["found", { lat: 52.52, lon: 13.405 }, "2026-11-30T17:05:00+00:00"]);

    // a search near where a photo was taken: the same photo, within 1 km of its own place
    await searchWith(page, join(REPO, "tests/fixtures/phone/iphone-24mp.heic"));
    await page.getByTestId("result").first().waitFor();
    const filters = page.getByRole("group", { name: "Lost & found" });
    await filters.getByRole("button", { name: "Near where the photo was taken" }).click();
    await filters.getByText("Near where the photo was taken.").waitFor();
    await expect(filters.getByLabel("Near").inputValue()).resolves.toBe("52.52, 13.405");
    await filters.getByLabel("Within (km)").fill("1");
    await page.getByRole("button", { name: "Search again" }).click();
    await page.getByText(/^1 match in [\d.]+ m?s \(server: [\d.]+ m?s\)$/).waitFor();
    await expect(page.getByTestId("result").first().getByTestId("report").textContent()).resolves.toMatch(/^Found0 m away/);
    await filters.getByLabel("Near").fill("");
    await filters.getByLabel("Within (km)").fill("");
    expect((await api(server, `/v1/dogs/${id}`, { method: "DELETE" })).status).toBe(204);
  });

  it("watches a lost dog, then shows the alert when a found dog that matches is added", async () => {
    const [lostPhoto] = photos("golden retriever", 1);
    const addReported = async (file: string | { name: string; mimeType: string; buffer: Buffer }, name: string,
                               status: string) => {
      await open(page, "#/add");
      await page.getByLabel("Choose a photo").setInputFiles(file);
      await page.getByRole("button", { name: /^Use suggestion/ }).waitFor();
      await page.getByLabel("Name").fill(name);
      await page.getByRole("group", { name: /Lost & found report/ }).getByLabel("Status").selectOption(status);
      await page.getByRole("button", { name: "Add dog" }).click();
      await page.getByRole("status").getByText("Added").waitFor();
      return (await page.getByRole("link", { name }).getAttribute("href"))!.split("/dogs/")[1];
    };
    const lost = await addReported(lostPhoto, "Buddy", "lost");
    await open(page, `#/dogs/${lost}`);
    await page.getByRole("button", { name: "Watch for matches" }).click();
    const watching = page.getByRole("status").filter({ hasText: /^Watching/ });
    await watching.waitFor();
    expect(await watching.evaluate((el) => el === document.activeElement)).toBe(true); // not the page's start

    // Later someone finds him and adds a photo of him (the same photo made smaller by the browser: other bytes).
    const dataUrl = await page.evaluate(async (src) => {
      const img = new Image();
      img.src = src;
      await img.decode();
      const canvas = document.createElement("canvas");
      canvas.width = Math.round(img.width * 0.9);
      canvas.height = Math.round(img.height * 0.9);
      canvas.getContext("2d")!.drawImage(img, 0, 0, canvas.width, canvas.height);
      return canvas.toDataURL("image/jpeg", 0.92);
    }, `data:image/jpeg;base64,${readFileSync(lostPhoto).toString("base64")}`);
    const foundPhoto = { name: "found.jpg", mimeType: "image/jpeg", buffer: Buffer.from(dataUrl.split(",")[1], "base64") };
    const found = await addReported(foundPhoto, "Found retriever", "found");
    // a copy of the lost dog's photo: the page says whose
    const copyOf = page.getByRole("status").getByRole("link", { name: "one stored before" });
    await expect(copyOf.getAttribute("href")).resolves.toBe(`#/dogs/${lost}`);

    await open(page, "#/alerts");
    const match = page.getByTestId("watch-match");
    await match.waitFor();
    await expect(match.textContent()).resolves.toMatch(/Found retriever \d+ % likely the same dog · Found/);
    // the watch named by its dog
    await page.getByTestId("watch").getByRole("heading", { name: /^Dogs like Buddy, / }).waitFor();
    // the found dog's photo is Buddy's own, made smaller: the alert says so
    await expect(match.getByTestId("copy-of-watched").textContent()).resolves.toMatch(/copy of this dog's own/);
    await expect(match.getByRole("link").getAttribute("href")).resolves.toBe(`#/dogs/${found}`);
    await imagesLoaded(page, ".watch-matches img", 1);
    await shot(page, "alerts-desktop.png");
    await open(page, `#/dogs/${found}`); // its page says so too
    await expect(page.getByTestId("copy-of").getByRole("link").getAttribute("href")).resolves.toBe(`#/dogs/${lost}`);
    await open(page, `#/dogs/${lost}`); // and the lost dog's page names the copy, and knows it is watched
    await page.getByTestId("watched").waitFor();
    expect(await page.getByRole("button", { name: "Watch for matches" }).count()).toBe(0);
    const copies = page.getByTestId("copies");
    await expect(copies.textContent()).resolves.toMatch(/^Another dog's photo looks like a copy of this one's: Found/);
    await expect(copies.getByRole("link").getAttribute("href")).resolves.toBe(`#/dogs/${found}`);
    await shot(page, "dog-copies-desktop.png");
    // "More like this" of Buddy: the found dog first, its photo a copy of Buddy's
    await page.getByRole("button", { name: "More like this" }).click();
    const copyCard = page.getByTestId("result").filter({ hasText: "Found retriever" });
    await expect(copyCard.getByTestId("copy-of").textContent()).resolves.toBe("Its photo is a copy of Buddy's");
    // the gallery of found dogs shows him, not the lost one
    await open(page, "#/gallery?status=found");
    await page.getByRole("link", { name: "Found retriever" }).first().waitFor();
    expect(await page.getByRole("link", { name: "Buddy" }).count()).toBe(0);
    await page.getByRole("combobox", { name: /Show/ }).selectOption("lost");
    await page.getByRole("link", { name: "Buddy" }).first().waitFor();
    expect(await page.getByRole("link", { name: "Found retriever" }).count()).toBe(0);
    await imagesLoaded(page, "[data-testid=gallery-dog] img", 1);
    await shot(page, "gallery-lost-desktop.png");
    // Buddy is home and his report deleted: his watch ends, its inbox stays readable until the owner deletes it
    expect((await api(server, `/v1/dogs/${lost}`, { method: "DELETE" })).status).toBe(204);
    await open(page, "#/alerts");
    const ended = page.getByTestId("watch");
    await expect(ended.getByTestId("watched-dog-deleted").textContent()).resolves.toMatch(
      /^Ended .+: its dog was deleted, so this watch looks for no more dogs and no more alerts come\. The matches below stay until you delete the watch\.$/,
    );
    await expect(ended.getByTestId("watch-match").textContent()).resolves.toMatch(/^Found retriever \d+ % likely the same dog/);
    await ended.getByRole("button", { name: "Delete this watch" }).click();
    await page.getByText("No watches yet.").waitFor();
    expect((await (await api(server, "/v1/watches")).json()).items).toEqual([]);
    expect((await api(server, `/v1/dogs/${found}`, { method: "DELETE" })).status).toBe(204);
  });

  it("accepts the suggested breed of a dog added without one", async () => {
    const added = await addPhoto(server, photos("Samoyed", 4)[3], { name: "Fluffy" });
    try {
      expect(added.payload.breed).toBeUndefined();
      await open(page, `#/dogs/${added.id}`);
      const suggested = page.getByTestId("suggested-breed");
      await suggested.waitFor();
      const breed = /^Suggested breed: (.+) \(\d+ %\)/.exec((await suggested.textContent())!)![1];
      await shot(page, "dog-suggested-breed-desktop.png");
      await page.getByRole("button", { name: `Accept the suggested breed ${breed}` }).click();
      await page.getByRole("status").getByText(`Breed set to ${breed}.`).waitFor();
      expect(await suggested.count()).toBe(0);
      expect((await (await api(server, `/v1/dogs/${added.id}`)).json()).payload.breed).toBe(breed);
    } finally {
      await api(server, `/v1/dogs/${added.id}`, { method: "DELETE" });
    }
  });

  it("draws and compares no pose for a dog that is the whole photo, a close-up of its face", async () => {
    // a sleeping dingo filling the frame: the detector finds no box, not even on its second look (its likeliest box
    // scores 0.40, under the look's 0.53, and covers half the photo); the classifier sees a dog: the whole photo
    const closeUp = await addPhoto(server, join(REPO, "tests/fixtures/close-up/ILSVRC2012_val_00041341.jpg"), {});
    try {
      expect(closeUp.payload.box).toEqual([0, 0, closeUp.payload.width, closeUp.payload.height]);
      const stored: { id: string; payload: { name?: string } }[] = (await (await api(server, "/v1/dogs?limit=100")).json()).items;
      const beagle = stored.find((d) => d.payload.name === "beagle 1")!;
      await open(page, `#/match/${closeUp.id}?from=${beagle.id}`);
      const explain = page.getByRole("region", { name: "The similarity in plain words" });
      if (await poseAvailable()) {
        await page.getByTestId("pose-guessed").waitFor({ timeout: 60_000 });
        await explain.getByText(/^Pose: the dog is the whole of this match \(no box within it/).waitFor();
        await page.getByTestId("pose-overlay").first().waitFor({ timeout: 60_000 }); // the query's is drawn
        expect(await page.getByTestId("pose-overlay").count()).toBe(1);
        expect(await page.getByTestId("pose-guessed").count()).toBe(1);
        expect(await page.getByRole("table", { name: "Proportions compared" }).count()).toBe(0);
        await shot(page, "match-close-up-desktop.png");
      }
    } finally {
      expect((await api(server, `/v1/dogs/${closeUp.id}`, { method: "DELETE" })).status).toBe(204);
    }
  });

  it("browses the gallery page by page", async () => {
    await open(page, "#/gallery?limit=4");
    await page.getByText("Dogs 1–4 of 9").waitFor();
    expect(await page.getByTestId("gallery-dog").count()).toBe(4);
    await page.getByRole("button", { name: "Next page" }).click();
    await page.getByText("Dogs 5–8 of 9").waitFor();
    await page.getByRole("button", { name: "Next page" }).click();
    await page.getByText("Dogs 9–9 of 9").waitFor();
    // a dog of page 3, then Back: page 3 again, the page kept in the address
    await page.getByTestId("gallery-dog").first().getByRole("link").last().click();
    await page.getByRole("button", { name: "More like this" }).waitFor();
    await page.goBack();
    await page.getByText("Dogs 9–9 of 9").waitFor();
    expect(await page.getByRole("button", { name: "Next page" }).isDisabled()).toBe(true);
    await page.getByRole("button", { name: "Previous page" }).click();
    await page.getByText("Dogs 5–8 of 9").waitFor();
  });

  it("shows a phone's HEIC, which Chromium cannot decode, from the server's JPEG, and searches with it", async () => {
    const heic = join(REPO, "tests/fixtures/phone/beagle.heic");
    const asked: string[] = [];
    const onRequest = (r: { url: () => string; method: () => string }) => {
      if (r.url().endsWith("/v1/preview")) asked.push(r.method());
    };
    page.on("request", onRequest);
    await searchWith(page, heic);
    await page.getByTestId("result").first().waitFor();
    await expect(page.getByTestId("result").first().textContent()).resolves.toContain("beagle");
    // the picked photo on the page: the server's JPEG, upright (the file's pixels are stored a quarter turn off)
    await page.waitForFunction(() => (document.querySelector(".picker img.preview") as HTMLImageElement)?.naturalWidth > 0);
    const shown = await page.$eval(".picker img.preview", (i) => [(i as HTMLImageElement).src, (i as HTMLImageElement).naturalWidth, (i as HTMLImageElement).naturalHeight]);
    expect(shown[0]).toMatch(/^blob:/);
    expect(shown.slice(1)).toEqual([213, 160]);
    expect(asked).toEqual(["POST"]); // Chromium could not show the file itself
    page.off("request", onRequest);
    await shot(page, "heic-search-desktop.png");
  });

  it("says in words why a bad, damaged or too-big file is refused, and that the server cannot be reached", async () => {
    await searchWith(page, { name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("not a photo at all") });
    // said in words, the server's own reason under them
    await expect(page.getByRole("alert").textContent()).resolves.toMatch(/^This file is not a photo the server can read/);
    expect(await page.getByTestId("error-details").textContent()).toMatch(/^ ?Details: not an image/);
    await page.getByText("No preview for this file").waitFor(); // not a broken-image icon
    await shot(page, "bad-file-desktop.png");

    await open(page, "#/add");
    // a photo cut short, as a copy that did not finish leaves it
    const cut = readFileSync(QUERY).subarray(0, 4000);
    await page.getByLabel("Choose a photo").setInputFiles({ name: "x.jpg", mimeType: "image/jpeg", buffer: cut });
    await page.getByRole("alert").waitFor(); // said as soon as it is chosen: nothing to add, nor to mark
    expect(await page.getByRole("alert").textContent()).toMatch(/^This photo could not be read: the file is damaged/);
    expect(await page.getByRole("button", { name: "Add dog" }).isDisabled()).toBe(true);
    expect(await page.getByRole("button", { name: /Mark the dog/ }).count()).toBe(0);

    // 21 MB through the browser protocol: slow on a busy machine
    await searchWith(page, { name: "huge.jpg", mimeType: "image/jpeg", buffer: Buffer.alloc(21 * 1024 * 1024, 1) }, 60_000);
    await expect(page.getByRole("alert").textContent()).resolves.toMatch(/too large/);

    await page.route("**/v1/search", (route) => route.abort("connectionrefused"));
    await searchWith(page, QUERY);
    await expect(page.getByRole("alert").textContent()).resolves.toContain("Cannot reach the dogsearch server");
    await page.unroute("**/v1/search");
  });

  it("runs a bulk job: progress bar, counts and its errors", async () => {
    for (const breed of ["Shih-Tzu", "dingo"]) {
      mkdirSync(join(bulkDir, breed), { recursive: true });
      for (const p of photos(breed, 2)) copyFileSync(p, join(bulkDir, breed, p.split("/").pop()!));
    }
    writeFileSync(join(bulkDir, "dingo", "broken.jpg"), "this is not a jpeg");
    await open(page, "#/jobs");
    await page.getByLabel("Folder on the server").fill(bulkDir);
    await page.getByRole("button", { name: "Start indexing" }).click();
    const job = page.getByTestId("job").first();
    await job.locator(".state", { hasText: /^(done|failed)$/ }).waitFor({ timeout: 60_000 });
    await expect(job.locator(".state").textContent()).resolves.toBe("done");
    const bar = job.getByRole("progressbar");
    expect(await bar.getAttribute("aria-valuetext")).toBe("5 of 5 photos");
    // 2 dingo photos were stored before the job: duplicates
    await expect(job.locator(".job-counts").textContent()).resolves.toMatch(/indexed 2 · duplicates 2 · failed 1/);
    await job.getByText(/broken\.jpg: not an image/).waitFor();
    expect(await job.getByRole("button", { name: "Cancel" }).count()).toBe(0); // only a running job has one
    await shot(page, "jobs-desktop.png");
  });

  it("runs a job of sightings that takes where and when from each photo, and says which photo does not tell", async () => {
    const sightings = join(bulkDir, "sightings");
    mkdirSync(sightings, { recursive: true });
    copyFileSync(join(REPO, "tests/fixtures/phone/iphone-24mp.heic"), join(sightings, "IMG_0001.HEIC"));
    copyFileSync(photos("Shih-Tzu", 1)[0], join(sightings, "scan.jpg")); // no time or place in it
    await open(page, "#/jobs");
    await page.getByLabel("Folder on the server").fill(sightings);
    await page.getByLabel("Status").selectOption("sighted");
    await page.getByLabel("Where and when from each photo").check();
    await page.getByRole("button", { name: "Start indexing" }).click();
    const job = page.getByTestId("job").filter({ hasText: sightings }); // not the job before it
    await job.locator(".state", { hasText: /^(done|failed)$/ }).waitFor({ timeout: 60_000 });
    await expect(job.locator(".job-counts").textContent()).resolves.toMatch(/indexed 1 · duplicates 0 · failed 1/);
    await job.getByText(/scan\.jpg: seen_at=photo: the photo (does not say when|says it was taken at)/).waitFor();
    const dogs = (await (await api(server, "/v1/dogs?limit=100")).json()).items as { id: string; payload: Record<string, unknown> }[];
    const sighted = dogs.filter((d) => d.payload.status === "sighted");
    expect(sighted.map((d) => [d.payload.seen_at, d.payload.location])).toEqual([
      ["2026-11-30T17:05:09+00:00", { lat: 52.52, lon: 13.405 }],
    ]);
    expect((await api(server, `/v1/dogs/${sighted[0].id}`, { method: "DELETE" })).status).toBe(204);
  });

  it("runs a job on a zip sent from the browser, where no server folder is needed", async () => {
    const zip = join(bulkDir, "upload.zip"); // photos/<breed>/: the one folder at its top is unpacked as the root
    const pack = "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], 'w') as z:\n  for p in sys.argv[2:]: z.write(p, 'photos/Old English sheepdog/' + p.rsplit('/', 1)[1])";
    execFileSync(join(REPO, ".venv/bin/python"), ["-c", pack, zip, ...photos("Old English sheepdog", 2)]);
    await open(page, "#/jobs");
    await page.getByLabel("A zip sent from this computer").check();
    await page.getByLabel("Zip file").setInputFiles(zip);
    await page.getByRole("button", { name: "Upload and start indexing" }).click();
    const job = page.getByTestId("job").filter({ hasText: "upload.zip" });
    await job.locator(".state", { hasText: /^(done|failed)$/ }).waitFor({ timeout: 60_000 });
    await expect(job.locator(".job-counts").textContent()).resolves.toMatch(/indexed 2 · duplicates 0 · failed 0/);
    const dogs = (await (await api(server, "/v1/dogs?limit=100")).json()).items as { id: string; payload: Record<string, unknown> }[];
    const added = dogs.filter((d) => d.payload.breed === "Old English sheepdog");
    expect(added).toHaveLength(2);
    for (const d of added) expect((await api(server, `/v1/dogs/${d.id}`, { method: "DELETE" })).status).toBe(204);
  });

  it("shows every time on the reader's own clock, its zone named, and reads out no ids", async () => {
    const away = await browser.newContext({ viewport: { width: 1280, height: 900 }, timezoneId: "Asia/Kolkata" });
    const p = await newPage(away);
    await signIn(p, server.keys.admin!, "e2e-admin");
    const dog = await addPhoto(server, photos("Rhodesian ridgeback", 1)[0],
      { name: "Ridge", status: "sighted", seen_at: "2026-11-30T17:05:00Z" });
    const watch = await api(server, "/v1/watches", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ dog_id: dog.id }),
    });
    expect(watch.status).toBe(201);
    const local = "\\d{1,2} \\w{3} \\d{4}, \\d\\d:\\d\\d GMT\\+5:30"; // India's clock, half an hour off any UTC hour
    const uuid = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;
    /** What a screen reader has of the page's main part: its accessibility tree, less the links' addresses. */
    const spoken = async () =>
      (await p.locator("main").ariaSnapshot()).split("\n").filter((l) => !l.trim().startsWith("- /url:")).join("\n");

    await p.goto(`${server.url}/#/gallery?status=sighted`);
    const card = p.getByTestId("gallery-dog").filter({ hasText: "Ridge" });
    await expect(card.getByTestId("report").textContent()).resolves.toBe("Sightedseen 30 Nov 2026, 22:35 GMT+5:30");
    expect(await spoken()).not.toMatch(uuid);

    await p.goto(`${server.url}/#/dogs/${dog.id}`);
    await expect(p.getByTestId("report").textContent()).resolves.toBe("Sightedseen 30 Nov 2026, 22:35 GMT+5:30");
    await p.getByText("Recorded by the server").click();
    await expect(p.locator("dt", { hasText: /^created_at$/ }).locator("+ dd").textContent()).resolves.toMatch(
      new RegExp(`^${local}$`));
    expect(await spoken()).not.toMatch(uuid);

    await p.goto(`${server.url}/#/alerts`);
    const watched = p.getByRole("article", { name: /^Dogs like Ridge/ });
    await expect(watched.getByText(/^Since /).textContent()).resolves.toMatch(new RegExp(`^Since ${local}$`));
    expect(await spoken()).not.toMatch(uuid);

    await p.goto(`${server.url}/#/jobs`);
    const times = p.getByTestId("job").first().getByTestId("job-times");
    // a job of minutes: its date said once
    const clock = "\\d\\d:\\d\\d GMT\\+5:30";
    await expect(times.textContent()).resolves.toMatch(new RegExp(`^(Started|Queued) ${local}(, ended (${local}|${clock}))?$`));
    expect(await spoken()).not.toMatch(uuid);
    await shot(p, "jobs-local-time-desktop.png");

    // the date filters are days on the reader's clock: seen at 1:30 on 1 Dec in India, 20:00 UTC on 30 Nov
    const seen = await api(server, `/v1/dogs/${dog.id}`, {
      method: "PATCH",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ seen_at: "2026-11-30T20:00:00Z" }),
    });
    expect(seen.status).toBe(200);
    await open(p, "#/search");
    const filters = p.getByRole("group", { name: "Lost & found" });
    await filters.getByLabel("Seen after").fill("2026-11-30"); // a day in UTC would keep it
    await filters.getByLabel("Seen before").fill("2026-11-30");
    await p.getByLabel("Choose a photo").setInputFiles(photos("Rhodesian ridgeback", 1)[0]);
    await p.getByTestId("search-summary").waitFor();
    expect(await p.getByTestId("result").filter({ hasText: "Ridge" }).count()).toBe(0);
    await filters.getByLabel("Seen after").fill("2026-12-01");
    await filters.getByLabel("Seen before").fill("2026-12-01");
    await p.getByRole("button", { name: "Search again" }).click();
    await p.getByTestId("result").filter({ hasText: "Ridge" }).waitFor();

    expect((await api(server, `/v1/watches/${(await watch.json()).id}`, { method: "DELETE" })).status).toBe(204);
    expect((await api(server, `/v1/dogs/${dog.id}`, { method: "DELETE" })).status).toBe(204);
    await away.close();
  });

  it("works on a narrow phone screen, with the camera offered", async () => {
    const phone = await browser.newContext({ viewport: { width: 375, height: 740 }, isMobile: true, hasTouch: true });
    const p = await newPage(phone);
    await signIn(p, server.keys.admin!, "e2e-admin"); // a new browser session: no key yet
    await p.goto(`${server.url}/#/search`);
    const camera = p.getByLabel("Take a photo");
    expect(await camera.getAttribute("capture")).toBe("environment");
    expect(await camera.getAttribute("accept")).toBe("image/*");
    expect(await p.getByText("Take a photo").isVisible()).toBe(true);
    await p.getByLabel("Choose a photo").setInputFiles(QUERY);
    await p.getByTestId("result").first().waitFor();
    // below the filters on a phone: the page goes to what the search came to once it ends
    await p.waitForFunction(() => {
      const shown = document.querySelector("[data-testid=search-summary]")?.getBoundingClientRect();
      return shown && shown.top >= 0 && shown.bottom <= window.innerHeight;
    });
    await imagesLoaded(p, "[data-testid=result]:first-child img"); // the rest load lazily as one scrolls
    // against the layout viewport: a phone zooms out to show a page wider than the screen, and window.innerWidth grows
    const overflow = () => p.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    expect(await overflow()).toBeLessThanOrEqual(0);
    // viewport only: a full-page capture drops the touch emulation, and with it the "Take a photo" button
    await p.screenshot({ path: join(SHOTS, "search-phone.png") });
    await p.getByText("Take a photo").waitFor();
    // marking the dog with a finger: touch events as the phone's screen sends them (the page must not scroll)
    await p.getByRole("button", { name: "Not the right dog? Mark it yourself" }).click();
    await p.waitForFunction(() => (document.querySelector(".mark-dog-frame img") as HTMLImageElement)?.naturalWidth > 0);
    const shown = (await p.getByAltText("Your photo: drag a box around the dog").boundingBox())!;
    const touch = await phone.newCDPSession(p);
    const at = (fx: number, fy: number) => [{ x: shown.x + shown.width * fx, y: shown.y + shown.height * fy }];
    await touch.send("Input.dispatchTouchEvent", { type: "touchStart", touchPoints: at(0.1, 0.1) });
    for (const f of [0.3, 0.5, 0.7, 0.9]) {
      await touch.send("Input.dispatchTouchEvent", { type: "touchMove", touchPoints: at(f, f) });
    }
    await touch.send("Input.dispatchTouchEvent", { type: "touchEnd", touchPoints: [] });
    const drawn = (await p.getByTestId("marked-box").boundingBox())!;
    expect(Math.abs(drawn.width - shown.width * 0.8)).toBeLessThan(4);
    expect(await overflow()).toBeLessThanOrEqual(0);
    await p.screenshot({ path: join(SHOTS, "search-mark-phone.png") });
    await p.getByRole("button", { name: "Search for this dog" }).click();
    await p.getByText("Searching with the dog you marked.").waitFor();
    await p.getByTestId("result").first().getByRole("link", { name: MATCH_LINK }).click();
    await p.getByRole("region", { name: "The similarity in plain words" }).waitFor();
    await p.getByTestId(poseState === 200 ? "pose-overlay" : "pose-unavailable").nth(1).waitFor({ timeout: 60_000 });
    await imagesLoaded(p, ".side img");
    expect(await overflow()).toBeLessThanOrEqual(0);
    await shot(p, "match-phone.png");
    await p.goto(`${server.url}/#/jobs`);
    await p.getByTestId("job").first().waitFor();
    expect(await overflow()).toBeLessThanOrEqual(0);
    await shot(p, "jobs-phone.png");
    // what is wrong with a photo to add is said under it, on the screen, not by the Add button far below
    await p.goto(`${server.url}/#/add`);
    await p.getByLabel("Choose a photo").setInputFiles(await photoWithoutDog(p));
    const why = p.getByText(/^No dog found in this photo\./);
    await why.waitFor();
    expect(await why.evaluate((e) => e.getBoundingClientRect().top < window.innerHeight)).toBe(true); // seen at once
    await p.screenshot({ path: join(SHOTS, "add-no-dog-phone.png") });
    // a long name without spaces wraps in the heading, not across the screen
    const long = await addPhoto(server, photos("Border terrier", 1)[0], { name: "Sir".padEnd(80, "x") }); // a photo stored by no other test
    await p.goto(`${server.url}/#/dogs/${long.id}`);
    await p.getByRole("button", { name: "More like this" }).waitFor();
    expect(await overflow()).toBeLessThanOrEqual(0);
    // ... and in the sentence that names a copy of its photo, and on the comparison of the two
    const copyDir = mkdtempSync(join(tmpdir(), "dogsearch-copy-"));
    const copyPath = join(copyDir, "copy.jpg");
    const enlarge = "import sys; from PIL import Image; i = Image.open(sys.argv[1]); i.resize((i.width * 2, i.height * 2)).save(sys.argv[2])";
    execFileSync(join(REPO, ".venv/bin/python"), ["-c", enlarge, photos("Border terrier", 1)[0], copyPath]);
    const copy = await addPhoto(server, copyPath, { name: "Lady".padEnd(80, "y") });
    rmSync(copyDir, { recursive: true });
    await p.reload(); // the page of the long name again, now with its copy
    await p.getByRole("link", { name: copy.payload.name as string }).waitFor();
    expect(await overflow()).toBeLessThanOrEqual(0);
    await p.goto(`${server.url}/#/match/${copy.id}?from=${long.id}`);
    await p.getByRole("heading", { name: `Match: ${copy.payload.name}` }).waitFor();
    expect(await overflow()).toBeLessThanOrEqual(0);
    await shot(p, "long-names-phone.png");
    for (const id of [long.id, copy.id]) expect((await api(server, `/v1/dogs/${id}`, { method: "DELETE" })).status).toBe(204);
    await phone.close();
  });

  it("a search-only key searches, but sees no add, bulk job or delete action", async () => {
    const viewer = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const p = await newPage(viewer);
    await p.goto(`${server.url}/#/gallery`);
    await p.getByTestId("sign-in-prompt").waitFor();
    // from the header this time: it leads to the form on the page, not to a second one
    await p.getByRole("banner").getByRole("button", { name: "Sign in" }).click();
    const field = p.getByTestId("sign-in-prompt").getByLabel("API key");
    expect(await field.evaluate((el) => el === document.activeElement)).toBe(true);
    expect(await p.getByRole("form", { name: "Sign in" }).count()).toBe(1);
    await p.keyboard.type(server.keys.search!);
    await p.keyboard.press("Enter");
    await expect(p.getByTestId("signed-in-as").textContent()).resolves.toBe("signed in as e2e-viewer (search)");
    const nav = p.getByRole("navigation", { name: "Main" });
    expect(await nav.getByRole("link").allTextContents()).toEqual(["Search", "Gallery"]);
    await p.getByTestId("gallery-dog").first().waitFor();
    expect((await imagesLoaded(p, "[data-testid=gallery-dog] img")).every((w) => w > 0)).toBe(true);
    await p.getByTestId("gallery-dog").first().getByRole("link").last().click();
    await p.getByRole("button", { name: "More like this" }).waitFor();
    await imagesLoaded(p, ".dog-photo", 1);
    expect(await p.getByRole("button", { name: /^Delete/ }).count()).toBe(0);
    await shot(p, "dog-search-key-desktop.png");
    // typed in by hand: the page says why, and the API refuses anyway
    await p.goto(`${server.url}/#/add`);
    await p.getByTestId("sign-in-prompt").getByText("Your key (e2e-viewer, search) cannot do this.").waitFor();
    expect(await p.getByRole("button", { name: "Add dog" }).count()).toBe(0);
    await p.goto(`${server.url}/#/jobs`);
    await p.getByTestId("sign-in-prompt").waitFor();
    expect(await p.getByLabel("Folder on the server").count()).toBe(0);
    const key = await p.evaluate(() => sessionStorage.getItem("dogsearch.apiKey"));
    expect(key).toBe(server.keys.search);
    const dog = (await (await api(server, "/v1/dogs?limit=1")).json()).items[0];
    expect((await fetch(`${server.url}/v1/dogs/${dog.id}`, { method: "DELETE", headers: { "X-API-Key": key! } })).status).toBe(403);
    // and a search works with the key
    await p.goto(`${server.url}/#/search`);
    await p.getByLabel("Choose a photo").setInputFiles(QUERY);
    await p.getByText(/^\d+ matches in /).waitFor();
    // signing out forgets the key: the search page asks again
    await p.getByRole("button", { name: "Sign out" }).click();
    await p.getByTestId("sign-in-prompt").waitFor();
    expect(await p.evaluate(() => sessionStorage.length)).toBe(0);
    await viewer.close();
  });

  it("can be used from the keyboard", async () => {
    await open(page, "#/search");
    // Tab only once the page has settled: the menu and the search form render after the key is checked, and a
    // sign-in prompt focused before then would be swapped out from under the keyboard.
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Bulk jobs" }).waitFor();
    await page.getByLabel("Choose a photo").waitFor({ state: "attached" });
    const reached: string[] = [];
    for (let i = 0; i < 12; i++) {
      await page.keyboard.press("Tab");
      reached.push(
        await page.evaluate(() => {
          const el = document.activeElement as HTMLElement;
          return el.id ? (document.querySelector(`label[for="${el.id}"]`)?.textContent ?? el.textContent ?? "") : (el.textContent ?? "");
        }),
      );
    }
    expect(reached).toEqual(expect.arrayContaining(["Search", "Add a dog", "Gallery", "Choose a photo", "Breed"]));
    // the search starts from the keyboard too: results, then a result's actions are reachable
    await page.getByLabel("Choose a photo").setInputFiles(QUERY);
    await page.locator("[aria-busy=false] [data-testid=result]").first().waitFor();
    const moreLike = page.getByTestId("result").first().getByRole("button", { name: "More like this" });
    await moreLike.focus();
    expect(await moreLike.evaluate((el) => el === document.activeElement)).toBe(true);
    await moreLike.press("Enter");
    // the query line ("More like <dog>"), not the results' own "More like this" buttons once they are back
    await page.locator("p", { hasText: /^More like / }).waitFor();
  });
});
