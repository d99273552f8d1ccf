// What the UI's unit tests share (vitest + jsdom); test-setup.ts undoes their stubs and storage after each test.
import { fireEvent, render, screen } from "@testing-library/react";
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

/** MarkDog's photo loaded at 800x600, shown at 200x150 from (10, 20) of the page: a quarter of its pixels a side. */
export function showPhoto(width = 800, height = 600) {
  const img = screen.getByAltText("Your photo: drag a box around the dog") as HTMLImageElement;
  Object.defineProperty(img, "naturalWidth", { value: width });
  Object.defineProperty(img, "naturalHeight", { value: height });
  img.getBoundingClientRect = () => ({ left: 10, top: 20, width: 200, height: 150 }) as DOMRect;
  fireEvent.load(img);
}

/** A drag on MarkDog's photo from one point of the page to another. */
export function drag(from: [number, number], to: [number, number]) {
  const area = screen.getByTestId("mark-area");
  fireEvent.pointerDown(area, { clientX: from[0], clientY: from[1], pointerId: 1 });
  fireEvent.pointerMove(area, { clientX: (from[0] + to[0]) / 2, clientY: (from[1] + to[1]) / 2, pointerId: 1 });
  fireEvent.pointerUp(area, { clientX: to[0], clientY: to[1], pointerId: 1 });
}
