import { describe, expect, it, vi } from "vitest";
import { showable } from "./preview";

/** An <img> that loads (or fails to) as soon as it is given a source: jsdom decodes no images. */
function browserDecodes(ok: boolean) {
  vi.stubGlobal(
    "Image",
    class {
      onload: (() => void) | null = null;
      onerror: (() => void) | null = null;
      set src(_: string) {
        queueMicrotask(() => (ok ? this.onload?.() : this.onerror?.()));
      }
    },
  );
}

const heic = new File([new Uint8Array([0, 0, 0, 24, 102, 116, 121, 112])], "IMG_0001.HEIC", { type: "image/heic" });

describe("a picked photo the browser cannot show", () => {
  it("is shown from the server's JPEG of it, and its own URL is let go", async () => {
    browserDecodes(false);
    const fetchMock = vi.fn(async () => new Response("jpeg", { status: 200, headers: { "Content-Type": "image/jpeg" } }));
    vi.stubGlobal("fetch", fetchMock);
    URL.createObjectURL = vi.fn(() => "blob:server-jpeg");
    URL.revokeObjectURL = vi.fn();
    expect(await showable(heic, "blob:own")).toBe("blob:server-jpeg");
    const [path, init] = fetchMock.mock.calls[0] as unknown as [string, RequestInit];
    expect(path).toBe("/v1/preview");
    expect((init.body as FormData).get("image")).toBe(heic);
    expect(URL.revokeObjectURL).toHaveBeenCalledWith("blob:own");
  });

  it("keeps its own URL where the browser shows it, asking the server nothing", async () => {
    browserDecodes(true);
    const fetchMock = vi.fn();
    vi.stubGlobal("fetch", fetchMock);
    expect(await showable(heic, "blob:own")).toBe("blob:own");
    expect(fetchMock).not.toHaveBeenCalled();
  });

  it("keeps its own URL where the server cannot make a JPEG either (the search says why)", async () => {
    browserDecodes(false);
    vi.stubGlobal("fetch", vi.fn(async () => new Response('{"detail": "not an image"}', { status: 415 })));
    URL.revokeObjectURL = vi.fn();
    expect(await showable(heic, "blob:own")).toBe("blob:own");
    expect(URL.revokeObjectURL).not.toHaveBeenCalled();
  });
});
