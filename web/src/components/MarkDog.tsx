import { useRef, useState, type PointerEvent } from "react";
import type { Box } from "../lib/types";

/** The least a marked box may measure on a side, in the photo's pixels: the server's (core/boxes.py). */
export const MIN_MARKED_SIDE = 16;

interface Props {
  /** the photo (an object URL of the picked file) */
  src: string;
  /** said on the button that sends the box */
  action: string;
  onMark: (box: Box) => void;
  onCancel: () => void;
  disabled?: boolean;
}

const clamp = (v: number) => Math.min(1, Math.max(0, v));

/**
 * The user draws a box around the dog on the photo (mouse, pen or finger), for a photo in which the detector found no
 * dog or boxed something else. The box is in the photo's own pixels (the browser shows a photo turned by its EXIF
 * orientation, as the server reads it), the corners in order whichever way it was dragged.
 */
export function MarkDog({ src, action, onMark, onCancel, disabled }: Props) {
  const img = useRef<HTMLImageElement>(null);
  const [start, setStart] = useState<[number, number] | null>(null);
  const [box, setBox] = useState<Box | null>(null);
  const [size, setSize] = useState<{ width: number; height: number } | null>(null); // once the photo has loaded

  /** Where the pointer is, in the photo's pixels. */
  const at = (e: PointerEvent, photo: { width: number; height: number }): [number, number] => {
    const r = img.current!.getBoundingClientRect();
    return [
      Math.round(clamp((e.clientX - r.left) / r.width) * photo.width),
      Math.round(clamp((e.clientY - r.top) / r.height) * photo.height),
    ];
  };
  const spanning = (a: [number, number], b: [number, number]): Box => [
    Math.min(a[0], b[0]),
    Math.min(a[1], b[1]),
    Math.max(a[0], b[0]),
    Math.max(a[1], b[1]),
  ];

  const onDown = (e: PointerEvent) => {
    if (disabled || !size) return;
    e.currentTarget.setPointerCapture?.(e.pointerId); // the drag goes on when the pointer leaves the photo
    const p = at(e, size);
    setStart(p);
    setBox([p[0], p[1], p[0], p[1]]);
  };
  const onMove = (e: PointerEvent) => {
    if (start && size) setBox(spanning(start, at(e, size)));
  };
  const onUp = (e: PointerEvent) => {
    if (start && size) setBox(spanning(start, at(e, size)));
    setStart(null);
  };

  const big = box !== null && box[2] - box[0] >= MIN_MARKED_SIDE && box[3] - box[1] >= MIN_MARKED_SIDE;
  const place =
    box && size
      ? {
          left: `${(box[0] / size.width) * 100}%`,
          top: `${(box[1] / size.height) * 100}%`,
          width: `${((box[2] - box[0]) / size.width) * 100}%`,
          height: `${((box[3] - box[1]) / size.height) * 100}%`,
        }
      : null;
  return (
    <div className="mark-dog" role="group" aria-label="Mark the dog">
      <p className="muted">Drag a box around the whole dog, then press “{action}”.</p>
      <div
        className="mark-dog-frame"
        data-testid="mark-area"
        onPointerDown={onDown}
        onPointerMove={onMove}
        onPointerUp={onUp}
        onPointerCancel={() => setStart(null)}
      >
        <img
          ref={img}
          src={src}
          alt="Your photo: drag a box around the dog"
          draggable={false}
          onLoad={(e) => setSize({ width: e.currentTarget.naturalWidth, height: e.currentTarget.naturalHeight })}
        />
        {place && <span className="dog-box current" style={place} data-testid="marked-box" aria-hidden="true" />}
      </div>
      {box && !big && !start && <p className="notice">The box is too small: mark the whole dog.</p>}
      <div className="mark-dog-actions">
        <button type="button" className="button small" disabled={disabled || !big} onClick={() => box && onMark(box)}>
          {action}
        </button>
        <button
          type="button"
          className="button small secondary"
          disabled={disabled || !size}
          onClick={() => size && setBox([0, 0, size.width, size.height])}
        >
          The whole photo
        </button>
        <button type="button" className="button small secondary" disabled={disabled} onClick={onCancel}>
          Cancel
        </button>
      </div>
    </div>
  );
}
