// The API key of this browser tab. sessionStorage, not localStorage: the key ends with the browser session.
const STORAGE_KEY = "dogsearch.apiKey";

type Listener = (keySent: boolean) => void;
const unauthenticated = new Set<Listener>();

export function getKey(): string | null {
  try {
    return window.sessionStorage.getItem(STORAGE_KEY) || null;
  } catch {
    return null; // storage blocked (privacy mode): no key
  }
}

export function setKey(key: string | null): void {
  try {
    if (key) window.sessionStorage.setItem(STORAGE_KEY, key);
    else window.sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    // storage blocked: the key lives only as long as this page
  }
}

/** Called by the API client on any 401; the sign-in state listens. */
export function onUnauthenticated(listener: Listener): () => void {
  unauthenticated.add(listener);
  return () => unauthenticated.delete(listener);
}

export function reportUnauthenticated(keySent: boolean): void {
  for (const listener of unauthenticated) listener(keySent);
}
