import { useId, useState, type ChangeEvent } from "react";
import { oneLine, percent } from "../lib/dogs";
import type { BreedGuess } from "../lib/types";

/** A dog's own fields as typed: its name, breed and notes. */
export interface DogFieldValues {
  name: string;
  breed: string;
  notes: string;
}

/** The most characters of a name or a breed (the server's MAX_LABEL_CHARS). */
export const MAX_LABEL_CHARS = 200;
/** From this many characters on, the field shows its count. */
const COUNT_FROM = 180;

type Label = "name" | "breed";

interface Props {
  value: DogFieldValues;
  onChange: (value: DogFieldValues) => void;
  /** while the form is being sent: nothing typed meanwhile would be kept. Read-only, not disabled: the field the
   * user pressed Enter in keeps the keyboard's focus. */
  readOnly?: boolean;
  /** the breed suggested for the dog: one click fills it in */
  suggestion?: BreedGuess | null;
}

/** The name, breed and notes of a dog, on the add form and on a dog's edit form. */
export function DogFields({ value, onChange, readOnly, suggestion }: Props) {
  const ids = useId();
  // which field had more typed or pasted than it takes: said, not cut silently (no maxLength, which cuts unseen)
  const [cut, setCut] = useState<Record<Label, boolean>>({ name: false, breed: false });
  const set = (key: keyof DogFieldValues) => (e: ChangeEvent<HTMLInputElement | HTMLTextAreaElement>) =>
    onChange({ ...value, [key]: e.target.value });
  const setLabel = (key: Label) => (e: ChangeEvent<HTMLInputElement>) => {
    const line = oneLine(e.target.value);
    setCut({ ...cut, [key]: line.length > MAX_LABEL_CHARS });
    onChange({ ...value, [key]: line.slice(0, MAX_LABEL_CHARS) });
  };
  const label = (key: Label, title: string) => {
    const length = value[key].length;
    const help = `${ids}-${key}-count`;
    return (
      <>
        <label htmlFor={`${ids}-${key}`}>{title}</label>
        <input
          id={`${ids}-${key}`}
          value={value[key]}
          onChange={setLabel(key)}
          readOnly={readOnly}
          aria-describedby={length >= COUNT_FROM || cut[key] ? help : undefined}
        />
        {(length >= COUNT_FROM || cut[key]) && (
          <small id={help} className="muted" data-testid={`${key}-count`} role={cut[key] ? "status" : undefined}>
            {length}/{MAX_LABEL_CHARS} characters
            {cut[key] ? `: a ${key} takes at most ${MAX_LABEL_CHARS}, the rest was left out.` : ""}
          </small>
        )}
      </>
    );
  };
  return (
    <>
      {label("name", "Name")}
      {label("breed", "Breed")}
      {suggestion && value.breed !== suggestion.breed && (
        <button
          type="button"
          className="button small secondary suggestion"
          onClick={() => onChange({ ...value, breed: suggestion.breed })}
          disabled={readOnly}
        >
          Use suggestion: {suggestion.breed} ({percent(suggestion.p)})
        </button>
      )}
      <label htmlFor={`${ids}-notes`}>Notes</label>
      <textarea id={`${ids}-notes`} value={value.notes} onChange={set("notes")} rows={3} readOnly={readOnly} />
    </>
  );
}
