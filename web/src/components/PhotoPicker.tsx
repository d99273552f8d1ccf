import { useId, useState, type DragEvent, type ReactNode } from "react";

interface Props {
  label: string;
  onPick: (file: File) => void;
  previewUrl?: string | null;
  /** shown instead of the plain preview (the photo with the dogs found on it) */
  preview?: ReactNode;
  disabled?: boolean;
}

/** Pick a photo (file chooser, phone camera, or drag and drop). The server judges the file; we only pass it on. */
export function PhotoPicker({ label, onPick, previewUrl, preview, disabled }: Props) {
  const id = useId();
  const [dragging, setDragging] = useState(false);
  // A file the browser cannot show (not an image at all, or HEIC on desktop): no broken-image icon.
  const [brokenUrl, setBrokenUrl] = useState<string | null>(null);

  const pick = (files: FileList | null) => {
    const file = files?.[0];
    if (file) onPick(file);
  };

  const onDrop = (event: DragEvent) => {
    event.preventDefault();
    setDragging(false);
    if (!disabled) pick(event.dataTransfer.files);
  };

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
      <div className="picker-buttons">
        <label className="button" htmlFor={`${id}-file`}>
          {label}
        </label>
        <input
          id={`${id}-file`}
          className="visually-hidden"
          type="file"
          accept="image/*"
          disabled={disabled}
          onChange={(e) => {
            pick(e.target.files);
            e.target.value = ""; // picking the same file again still fires
          }}
        />
        <label className="button secondary camera-only" htmlFor={`${id}-camera`}>
          Take a photo
        </label>
        <input
          id={`${id}-camera`}
          className="visually-hidden camera-only"
          type="file"
          accept="image/*"
          capture="environment"
          disabled={disabled}
          onChange={(e) => {
            pick(e.target.files);
            e.target.value = "";
          }}
        />
      </div>
    </div>
  );
}
