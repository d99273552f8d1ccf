import { createContext, useCallback, useContext, useEffect, useState, type ReactNode } from "react";
import { ApiError, getMe, messageOf } from "./api";
import { forgetImages } from "./images";
import { getKey, onUnauthenticated, setKey } from "./session";
import type { Me } from "./types";

export interface Auth {
  /** null until the server said who we are */
  me: Me | null;
  signedIn: boolean;
  /** why the visitor must sign in again (a refused key), shown by the sign-in prompts */
  notice: string | null;
  /** bumped on every sign-in and sign-out: pages load again with the new key */
  generation: number;
  /** resolves to an error message, or null once signed in */
  signIn: (key: string) => Promise<string | null>;
  signOut: () => void;
}

// Outside a provider (component tests of one page): an open server, everything allowed, as before keys.
const OPEN: Auth = {
  me: { name: null, scope: "admin", scopes: ["search", "write", "admin"], open: true, anonymous_search: true },
  signedIn: false,
  notice: null,
  generation: 0,
  signIn: async () => null,
  signOut: () => {},
};

const AuthContext = createContext<Auth>(OPEN);

export const useAuth = (): Auth => useContext(AuthContext);

export const REFUSED_KEY = "That key was not accepted. Check that you pasted all of it, and try again.";
export const EXPIRED_KEY = "The server no longer accepts your key (it may have been revoked). Sign in again.";

/** Asks the server who we are at start and after every change of key. */
export function AuthProvider({ children }: { children: ReactNode }) {
  const [me, setMe] = useState<Me | null>(null);
  const [signedIn, setSignedIn] = useState(() => getKey() !== null);
  const [notice, setNotice] = useState<string | null>(null);
  const [generation, setGeneration] = useState(0);

  const load = useCallback(async () => {
    try {
      setMe(await getMe(getKey()));
    } catch (e) {
      if (e instanceof ApiError && e.status === 401 && getKey()) {
        // the stored key was revoked since: drop it and ask anonymously
        setKey(null);
        setSignedIn(false);
        setNotice(EXPIRED_KEY);
        return load();
      }
      // cannot tell (server unreachable): let the pages try, and show their own errors
      setMe(OPEN.me);
    }
  }, []);

  useEffect(() => {
    void load();
  }, [load]);

  const changed = useCallback(() => {
    forgetImages();
    setGeneration((g) => g + 1);
  }, []);

  // A 401 from any call made with a key: the key is no longer good.
  useEffect(
    () =>
      onUnauthenticated((keySent) => {
        if (!keySent || !getKey()) return;
        setKey(null);
        setSignedIn(false);
        setNotice(EXPIRED_KEY);
        changed();
        void load();
      }),
    [changed, load],
  );

  const signIn = useCallback(
    async (key: string): Promise<string | null> => {
      const secret = key.trim();
      if (!secret) return "Paste your API key first.";
      try {
        const who = await getMe(secret);
        if (who.open && who.scope === "admin" && who.name === null) {
          return "This server is open: it needs no key."; // nothing to keep
        }
        setKey(secret);
        setMe(who);
        setSignedIn(true);
        setNotice(null);
        changed();
        return null;
      } catch (e) {
        return e instanceof ApiError && e.status === 401 ? REFUSED_KEY : messageOf(e);
      }
    },
    [changed],
  );

  const signOut = useCallback(() => {
    setKey(null);
    setSignedIn(false);
    setNotice(null);
    setMe(null);
    changed();
    void load();
  }, [changed, load]);

  return (
    <AuthContext.Provider value={{ me, signedIn, notice, generation, signIn, signOut }}>{children}</AuthContext.Provider>
  );
}
