import { useId, type ChangeEvent } from "react";
import { percent } from "../lib/dogs";
import type { BreedGuess } from "../lib/types";

/** A dog's own fields as typed: its name, breed and notes. */
export interface DogFieldValues {
  name: string;
  breed: string;
  notes: string;
}

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
  const set = (key: keyof DogFieldValues) => (e: ChangeEvent<HTMLInputElement | HTMLTextAreaElement>) =>
    onChange({ ...value, [key]: e.target.value });
  return (
    <>
      <label htmlFor={`${ids}-name`}>Name</label>
      <input id={`${ids}-name`} value={value.name} onChange={set("name")} maxLength={200} readOnly={readOnly} />
      <label htmlFor={`${ids}-breed`}>Breed</label>
      <input id={`${ids}-breed`} value={value.breed} onChange={set("breed")} maxLength={200} readOnly={readOnly} />
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
