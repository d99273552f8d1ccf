import { SIGN_IN_NEEDED } from "../lib/api";
import { SignInPrompt } from "./SignIn";

export function ErrorBanner({ error, onDismiss }: { error: string | null; onDismiss?: () => void }) {
  if (!error) return null;
  if (error === SIGN_IN_NEEDED) return <SignInPrompt />; // a 401: the way in, not an error
  return (
    <div className="error" role="alert">
      <span>{error}</span>
      {onDismiss && (
        <button type="button" className="link" onClick={onDismiss} aria-label="Dismiss error">
          ✕
        </button>
      )}
    </div>
  );
}

export function Notice({ children }: { children: React.ReactNode }) {
  return (
    <p className="notice" role="status">
      {children}
    </p>
  );
}
