import {
  useEffect,
  useId,
  useRef,
  useState,
  useSyncExternalStore,
  type FormEvent,
  type KeyboardEvent,
  type ReactNode,
  type Ref,
} from "react";
import { allows, scopeOf } from "../lib/access";
import { useAuth } from "../lib/auth";
import type { Scope } from "../lib/types";

// The sign-in prompts the page shows now: with one there, the header's "Sign in" leads to it, not to a second form.
const prompts = new Set<HTMLInputElement>();
const listeners = new Set<() => void>();
const changed = () => listeners.forEach((l) => l());
const subscribe = (l: () => void) => {
  listeners.add(l);
  return () => void listeners.delete(l);
};
const promptField = () => prompts.values().next().value ?? null;

/** Paste a key, check it with the server; `onDone` after a successful sign-in. */
export function SignInForm({
  onDone,
  onCancel,
  fieldRef,
}: {
  onDone?: () => void;
  onCancel?: () => void;
  fieldRef?: Ref<HTMLInputElement>;
}) {
  const ids = useId();
  const { signIn } = useAuth();
  const [key, setKey] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    const why = await signIn(key);
    setBusy(false);
    if (why) setError(why);
    else {
      setKey("");
      onDone?.();
    }
  };

  return (
    <form
      className="signin-form"
      onSubmit={onSubmit}
      aria-label="Sign in"
      onKeyDown={(e: KeyboardEvent) => {
        if (e.key === "Escape" && onCancel) {
          e.preventDefault();
          onCancel();
        }
      }}
    >
      <label htmlFor={`${ids}-key`}>API key</label>
      <input
        ref={fieldRef}
        id={`${ids}-key`}
        type="password"
        value={key}
        onChange={(e) => setKey(e.target.value)}
        placeholder="dgs_…"
        autoComplete="off"
        spellCheck={false}
        aria-describedby={error ? `${ids}-error` : `${ids}-help`}
        aria-invalid={error ? true : undefined}
        autoFocus={Boolean(onCancel)}
      />
      {error ? (
        <p id={`${ids}-error`} className="error" role="alert">
          {error}
        </p>
      ) : (
        <small id={`${ids}-help`} className="muted">
          Kept in this browser tab until you sign out or close the browser.
        </small>
      )}
      <div className="signin-buttons">
        <button type="submit" className="button small" disabled={busy}>
          {busy ? "Checking…" : "Sign in"}
        </button>
        {onCancel && (
          <button type="button" className="button small secondary" onClick={onCancel}>
            Cancel
          </button>
        )}
      </div>
    </form>
  );
}

/** The header's part: who is signed in and a way out, or a way in (a popover; the form on the page where the page
 * shows one). An open server needs neither. */
export function AccountControl() {
  const { me, signedIn, signOut } = useAuth();
  const ids = useId();
  const [open, setOpen] = useState(false);
  const button = useRef<HTMLButtonElement>(null);
  const onPage = useSyncExternalStore(subscribe, () => prompts.size > 0);
  const close = () => {
    setOpen(false);
    button.current?.focus();
  };
  useEffect(() => {
    if (onPage) setOpen(false);
  }, [onPage]);
  if (!me || (me.open && !signedIn)) return null;
  if (signedIn) {
    return (
      <div className="account">
        <span data-testid="signed-in-as">
          signed in as <strong>{me.name ?? "an unnamed key"}</strong> ({me.scope})
        </span>
        <button type="button" className="button small secondary" onClick={signOut}>
          Sign out
        </button>
      </div>
    );
  }
  return (
    <div className="account">
      <button
        ref={button}
        type="button"
        className="button small"
        aria-expanded={onPage ? undefined : open}
        aria-controls={open ? `${ids}-popover` : undefined}
        onClick={() => (onPage ? promptField()?.focus() : setOpen((o) => !o))}
      >
        Sign in
      </button>
      {open && (
        <div className="signin-popover" id={`${ids}-popover`}>
          <SignInForm onDone={() => setOpen(false)} onCancel={close} />
        </div>
      )}
    </div>
  );
}

const NEEDS: Record<Scope, string> = {
  search: "your key", // every key may search
  write: "a key with the write scope",
  admin: "an admin key",
};

/** In place of what a page cannot show: why, and the sign-in form right there. */
export function SignInPrompt({ why, needed }: { why?: string; needed?: Scope }) {
  const { me, signedIn, notice } = useAuth();
  const ids = useId();
  const who = signedIn && me ? `Your key (${me.name ?? "unnamed"}, ${scopeOf(me)}) cannot do this.` : null;
  const field = useRef<HTMLInputElement>(null);
  useEffect(() => {
    const shown = field.current;
    if (!shown) return;
    prompts.add(shown);
    changed();
    return () => {
      prompts.delete(shown);
      changed();
    };
  }, []);
  const what = needed ? NEEDS[needed] : "an API key";
  return (
    <section className="notice signin-prompt" aria-labelledby={`${ids}-h`} data-testid="sign-in-prompt">
      <h2 id={`${ids}-h`}>Sign in</h2>
      {notice && !signedIn && <p role="status">{notice}</p>}
      <p>
        {who ?? "This server needs an API key."} Sign in with {what} {why ?? "to continue"}.
      </p>
      <SignInForm fieldRef={field} />
    </section>
  );
}

/** The page if this visitor's scope allows it, else a sign-in prompt under the page's title. */
export function RequireScope({
  scope,
  title,
  why,
  children,
}: {
  scope: Scope;
  title: string;
  why?: string;
  children: ReactNode;
}) {
  const { me } = useAuth();
  if (!me) return <p className="notice">Loading…</p>;
  if (allows(me, scope)) return <>{children}</>;
  return (
    <section>
      <h1>{title}</h1>
      <SignInPrompt needed={scope} why={why} />
    </section>
  );
}
