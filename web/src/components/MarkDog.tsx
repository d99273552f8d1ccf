import { useEffect, useId, useRef, useState, type KeyboardEvent, type PointerEvent } from "react";
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

// The keyboard's way: an arrow moves the box; with Shift it moves the box's right or bottom edge (its size).
const ARROWS: Record<string, [number, number]> = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };

/** `box` moved (or with `resize`, its right or bottom edge moved) by `dir` steps of 2 % of the photo's side, inside
 * the photo and never under MIN_MARKED_SIDE. */
export function nudge(box: Box, dir: [number, number], resize: boolean, photo: { width: number; height: number }): Box {
  const [x0, y0, x1, y1] = box;
  const dx = dir[0] * Math.max(1, Math.round(photo.width * 0.02));
  const dy = dir[1] * Math.max(1, Math.round(photo.height * 0.02));
  const within = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));
  if (resize) {
    return [x0, y0, within(x1 + dx, x0 + MIN_MARKED_SIDE, photo.width), within(y1 + dy, y0 + MIN_MARKED_SIDE, photo.height)];
  }
  const mx = within(dx, -x0, photo.width - x1);
  const my = within(dy, -y0, photo.height - y1);
  return [x0 + mx, y0 + my, x1 + mx, y1 + my];
}

/**
 * The user draws a box around the dog on the photo (mouse, pen or finger; or the arrow keys, from a box in the middle),
 * for a photo in which the detector found no dog or boxed something else. The box is in the photo's own pixels (the
 * browser shows a photo turned by its EXIF orientation, as the server reads it), the corners in order whichever way it
 * was dragged. The photo is shown as large as the room allows, a small one scaled up.
 */
export function MarkDog({ src, action, onMark, onCancel, disabled }: Props) {
  const img = useRef<HTMLImageElement>(null);
  const frame = useRef<HTMLDivElement>(null);
  const cancel = useRef<HTMLButtonElement>(null);
  const how = useId();
  const [start, setStart] = useState<[number, number] | null>(null);
  const [box, setBox] = useState<Box | null>(null);
  const [size, setSize] = useState<{ width: number; height: number } | null>(null); // once the photo has loaded
  const [broken, setBroken] = useState(false); // a file the browser cannot show: nothing to mark on

  // It takes the place of the button that opened it: the keyboard's focus goes on to the photo, not the page's start.
  useEffect(() => frame.current?.focus({ preventScroll: true }), []);
  useEffect(() => void (broken && cancel.current?.focus()), [broken]);

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

  /** The photo's size: a drag that starts as the photo appears, before its load has been rendered, reads it from
   * the photo itself. */
  const sizeNow = () => {
    const shown = img.current;
    return size ?? (shown?.naturalWidth ? { width: shown.naturalWidth, height: shown.naturalHeight } : null);
  };
  const onDown = (e: PointerEvent) => {
    const photo = sizeNow();
    if (disabled || !photo) return;
    e.currentTarget.setPointerCapture?.(e.pointerId); // the drag goes on when the pointer leaves the photo
    const p = at(e, photo);
    setStart(p);
    setBox([p[0], p[1], p[0], p[1]]);
  };
  const onMove = (e: PointerEvent) => {
    const photo = sizeNow();
    if (start && photo) setBox(spanning(start, at(e, photo)));
  };
  const onUp = (e: PointerEvent) => {
    const photo = sizeNow();
    if (start && photo) setBox(spanning(start, at(e, photo)));
    setStart(null);
  };
  const onKey = (e: KeyboardEvent) => {
    const dir = ARROWS[e.key];
    if (!dir || disabled || !size) return;
    e.preventDefault(); // not the page's scrolling
    const { width: w, height: h } = size;
    // the first key puts a box of half the photo in its middle
    setBox((b) => (b ? nudge(b, dir, e.shiftKey, size) : [Math.round(w / 4), Math.round(h / 4), Math.round((3 * w) / 4), Math.round((3 * h) / 4)]));
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
      <p className="muted" id={how}>
        Drag a box around the whole dog, then press “{action}”. With the keyboard: the arrow keys move the box, Shift and
        the arrow keys change its size.
      </p>
      {broken ? (
        <p className="notice" role="alert">
          This file cannot be shown as a photo, so the dog cannot be marked on it.
        </p>
      ) : (
        <div
          ref={frame}
          className="mark-dog-frame"
          data-testid="mark-area"
          role="application"
          aria-label="The photo to mark the dog on"
          aria-describedby={how}
          tabIndex={0}
          onPointerDown={onDown}
          onPointerMove={onMove}
          onPointerUp={onUp}
          onPointerCancel={() => setStart(null)}
          onKeyDown={onKey}
        >
          <img
            ref={img}
            src={src}
            alt="Your photo: drag a box around the dog"
            draggable={false}
            onLoad={(e) => {
              const { naturalWidth: width, naturalHeight: height } = e.currentTarget;
              // the frame's shape, set at once: the photo is laid out at its size before anyone can drag on it
              frame.current?.style.setProperty("--aspect", String(width / height));
              setSize({ width, height });
            }}
            onError={() => setBroken(true)}
          />
          {place && <span className="dog-box current" style={place} data-testid="marked-box" aria-hidden="true" />}
        </div>
      )}
      {/* where the box is, in words, for those who move it without seeing it */}
      <p className="visually-hidden" aria-live="polite">
        {box && size && !start ? `The box: ${box[0]}, ${box[1]} to ${box[2]}, ${box[3]} of ${size.width} by ${size.height} pixels.` : ""}
      </p>
      {box && !big && !start && <p className="notice">The box is too small: mark the whole dog.</p>}
      <div className="mark-dog-actions">
        <button type="button" className="button small" disabled={disabled || !big} onClick={() => box && onMark(box)}>
          {action}
        </button>
        <button
          type="button"
          className="button small secondary"
          disabled={disabled || !size || broken}
          onClick={() => size && setBox([0, 0, size.width, size.height])}
        >
          The whole photo
        </button>
        <button ref={cancel} type="button" className="button small secondary" disabled={disabled} onClick={onCancel}>
          Cancel
        </button>
      </div>
    </div>
  );
}
