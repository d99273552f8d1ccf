// What the UI's unit tests share (vitest + jsdom); test-setup.ts undoes their stubs and storage after each test.
import { render } from "@testing-library/react";
import { vi } from "vitest";
import { App } from "./App";

/** A JSON response, as the gateway answers. */
export const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });

/** jsdom has no object URLs: a picked photo's preview gets `url`. */
export function stubObjectUrls(url = "blob:photo") {
  URL.createObjectURL = vi.fn(() => url);
  URL.revokeObjectURL = vi.fn();
}

/** The whole app at `hash`, with `apiKey` kept as a signed-in visitor's (none: signed out). */
export function renderApp(hash: string, apiKey?: string) {
  if (apiKey) window.sessionStorage.setItem("dogsearch.apiKey", apiKey);
  window.location.hash = hash;
  return render(<App />);
}
