import { SIGN_IN_NEEDED } from "../lib/api";
import { DETAILS } from "../lib/errors";
import { SignInPrompt } from "./SignIn";

export function ErrorBanner({ error, onDismiss }: { error: string | null; onDismiss?: () => void }) {
  if (!error) return null;
  if (error === SIGN_IN_NEEDED) return <SignInPrompt />; // a 401: the way in, not an error
  return (
    <div className="error" role="alert">
      <span>
        <WithDetails text={error} />
      </span>
      {onDismiss && (
        <button type="button" className="link" onClick={onDismiss} aria-label="Dismiss error">
          ✕
        </button>
      )}
    </div>
  );
}

/** A message: the plain sentence first; the server's own reason, where one is kept, under it in small print. */
export function WithDetails({ text }: { text: string }) {
  const [plain, ...details] = text.split(DETAILS);
  return (
    <>
      {plain}
      {details.length > 0 && (
        <small className="error-details" data-testid="error-details">
          {" "}
          Details: {details.join("; ")}
        </small>
      )}
    </>
  );
}

export function Notice({ children }: { children: React.ReactNode }) {
  return (
    <p className="notice" role="status">
      {children}
    </p>
  );
}
