import { useId, useState, type ChangeEvent, type DragEvent, type MouseEvent, type ReactNode } from "react";

interface Props {
  label: string;
  onPick: (file: File) => void;
  previewUrl?: string | null;
  /** shown instead of the plain preview (the photo with the dogs found on it) */
  preview?: ReactNode;
  disabled?: boolean;
}

/**
 * Pick a photo (file chooser, phone camera, or drag and drop). The server judges the file; we only pass it on.
 * `disabled` (the page is busy with the last photo) ignores picks but keeps the inputs focusable: a disabled input
 * would drop the keyboard's focus to the page's start just after the user picked with it.
 */
export function PhotoPicker({ label, onPick, previewUrl, preview, disabled }: Props) {
  const id = useId();
  const [dragging, setDragging] = useState(false);
  // A file the browser cannot show (not an image at all, or HEIC on desktop): no broken-image icon.
  const [brokenUrl, setBrokenUrl] = useState<string | null>(null);
  // Several files dropped on a picker of one photo: which one is used is said, not left to guess.
  const [note, setNote] = useState<string | null>(null);

  const pick = (files: FileList | null) => {
    const file = files?.[0];
    if (!file || disabled) return;
    setNote(
      files.length > 1 ? `${files.length} files dropped: this takes one photo, so the first (${file.name}) is used.` : null,
    );
    onPick(file);
  };

  const onDrop = (event: DragEvent) => {
    event.preventDefault();
    setDragging(false);
    pick(event.dataTransfer.files);
  };
  const input = {
    className: "visually-hidden",
    type: "file",
    accept: "image/*",
    "aria-disabled": disabled || undefined,
    onClick: (e: MouseEvent) => disabled && e.preventDefault(), // no file chooser while busy
    onChange: (e: ChangeEvent<HTMLInputElement>) => {
      pick(e.target.files);
      e.target.value = ""; // picking the same file again still fires
    },
  } as const;
  const look = disabled ? " disabled" : "";

  return (
    <div
      className={`picker${dragging ? " dragging" : ""}`}
      onDragOver={(e) => {
        e.preventDefault();
        setDragging(true);
      }}
      onDragLeave={() => setDragging(false)}
      onDrop={onDrop}
      data-testid="photo-picker"
    >
      {preview ? (
        preview
      ) : previewUrl && brokenUrl === previewUrl ? (
        <p className="picker-hint">No preview for this file</p>
      ) : previewUrl ? (
        <img className="preview" src={previewUrl} alt="The photo you picked" onError={() => setBrokenUrl(previewUrl)} />
      ) : (
        <p className="picker-hint" aria-hidden="true">
          Drop a photo here
        </p>
      )}
      {note && (
        <p className="picker-note" role="status">
          {note}
        </p>
      )}
      <div className="picker-buttons">
        <label className={`button${look}`} htmlFor={`${id}-file`}>
          {label}
        </label>
        <input id={`${id}-file`} {...input} />
        <label className={`button secondary camera-only${look}`} htmlFor={`${id}-camera`}>
          Take a photo
        </label>
        <input id={`${id}-camera`} {...input} className="visually-hidden camera-only" capture="environment" />
      </div>
    </div>
  );
}
