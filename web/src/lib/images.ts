import { useEffect, useState } from "react";
import { fetchBlob } from "./api";
import { getKey } from "./session";

// An <img> cannot send the X-API-Key header: with a key, photos are fetched with it and shown from object URLs.
// A bounded cache keeps going back and forth between pages cheap; the oldest URLs are released.
const MAX_CACHED = 400;
const cache = new Map<string, Promise<string>>();

function objectUrl(path: string): Promise<string> {
  let url = cache.get(path);
  if (url) {
    cache.delete(path); // most recently used last
    cache.set(path, url);
    return url;
  }
  url = fetchBlob(path).then((blob) => URL.createObjectURL(blob));
  url.catch(() => cache.delete(path)); // a failure is not remembered
  cache.set(path, url);
  for (const [old, oldUrl] of cache) {
    if (cache.size <= MAX_CACHED) break;
    cache.delete(old);
    void oldUrl.then((u) => URL.revokeObjectURL(u), () => {});
  }
  return url;
}

/** After a change of key: the photos of the old key are not shown again. */
export function forgetImages(): void {
  for (const url of cache.values()) void url.then((u) => URL.revokeObjectURL(u), () => {});
  cache.clear();
}

export type ImageSrc = { src: string | null; failed: boolean };

/** The src to show an API photo with: the plain URL without a key, an object URL fetched with it otherwise. */
export function useImageSrc(path: string | null | undefined): ImageSrc {
  const key = getKey();
  const direct = !key || !path || !path.startsWith("/v1/");
  const [state, setState] = useState<ImageSrc & { for?: string }>({ src: null, failed: false });
  useEffect(() => {
    if (direct || !path) return;
    let live = true;
    objectUrl(path).then(
      (src) => live && setState({ src, failed: false, for: path }),
      () => live && setState({ src: null, failed: true, for: path }),
    );
    return () => {
      live = false;
    };
  }, [direct, path, key]);
  if (direct) return { src: path ?? null, failed: false };
  return state.for === path ? state : { src: null, failed: false };
}
