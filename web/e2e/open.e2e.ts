// The demo: a server with no keys, on loopback, is open. The UI works as before keys, without signing in.
import { readdirSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addPhoto, GALLERY, launchChromium, QUERY, type Server, startServer } from "./server";

let server: Server;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

beforeAll(async () => {
  browser = await launchChromium(); // first: no Chromium fails before a server starts
  server = await startServer(); // no keys: open, as `make demo` runs it
  for (const breed of ["beagle", "Samoyed"]) {
    const file = readdirSync(join(GALLERY, breed)).sort()[0];
    await addPhoto(server, join(GALLERY, breed, file), { breed, name: `${breed} 1` });
  }
  page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  page.setDefaultTimeout(15_000);
  page.on("pageerror", (e) => pageErrors.push(String(e)));
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
  expect(pageErrors, "uncaught errors in the page").toEqual([]);
});

describe("the open demo server", () => {
  it("searches and offers every action, delete included, without signing in", async () => {
    expect(await (await fetch(`${server.url}/v1/me`)).json()).toMatchObject({ open: true, scope: "admin" });
    await page.goto(`${server.url}/#/search`);
    await page.getByLabel("Choose a photo").setInputFiles(QUERY);
    await page.getByText(/^2 matches in /).waitFor();
    await expect(page.getByTestId("result").first().textContent()).resolves.toContain("beagle");
    const nav = page.getByRole("navigation", { name: "Main" });
    expect(await nav.getByRole("link").allTextContents()).toEqual(["Search", "Add a dog", "Gallery", "Bulk jobs", "Alerts"]);
    expect(await page.getByRole("button", { name: "Sign in" }).count()).toBe(0);
    expect(await page.getByTestId("sign-in-prompt").count()).toBe(0);
    // photos straight from their URLs, as before keys
    expect(await page.locator("[data-testid=result] img").first().getAttribute("src")).toMatch(/^\/v1\/dogs\//);

    await page.getByTestId("result").first().locator(".card-title a").click();
    await page.getByRole("button", { name: "Delete…" }).click();
    await page.getByRole("button", { name: "Yes, delete" }).click();
    await page.getByText("was deleted").waitFor();
    expect((await (await fetch(`${server.url}/v1/dogs?limit=1`)).json()).total).toBe(1);
  });
});
