import { useState, type CSSProperties } from "react";
import { cropAround, placeBox } from "../lib/dogs";
import type { Box } from "../lib/types";
import { ApiImage } from "./ApiImage";

export interface MarkedDog {
  index: number;
  box: Box;
}

interface Props {
  src: string | null | undefined;
  alt: string;
  dogs: MarkedDog[];
  /** the photo's pixel size the boxes refer to; unknown: the image's natural size once it has loaded */
  width?: number | null;
  height?: number | null;
  /** the dog in use (searched, or to be added): drawn highlighted */
  selected?: number;
  /** given: with several dogs, the user picks one (a click on its box, or its "Dog N" button) */
  onSelect?: (index: number) => void;
  disabled?: boolean;
  /** "cover": the photo fills a square, cropped (thumbnails); "contain": the whole photo */
  fit?: "contain" | "cover";
  /** "cover" with one dog: the square centred on its box, not on the photo (a dog at the side is not cut off) */
  cropToDog?: boolean;
  className?: string;
  imgClassName?: string;
  imgTestId?: string;
  loading?: "lazy" | "eager";
}

/** A photo with the boxes of the dogs found on it, scaled with the photo as it is shown. */
export function PhotoBoxes(props: Props) {
  const { src, alt, dogs, selected, onSelect, disabled, fit = "contain" } = props;
  const [natural, setNatural] = useState<{ src: string; width: number; height: number } | null>(null);
  const known = props.width && props.height ? { width: props.width, height: props.height } : null;
  const size = known ?? (natural && natural.src === src ? natural : null);
  const several = dogs.length > 1;
  const pick = onSelect && several && !disabled ? onSelect : undefined;
  const crop = props.cropToDog && fit === "cover" && size && dogs.length === 1 ? cropAround(dogs[0].box, size.width, size.height) : undefined;

  return (
    <div className={`photo-boxes fit-${fit} ${props.className ?? ""}`}>
      {/* --aspect: for the pages that show a small photo as large as the room allows (styles.css) */}
      <div className="photo-boxes-frame" style={size ? ({ "--aspect": size.width / size.height } as CSSProperties) : undefined}>
        <ApiImage
          src={src}
          alt={alt}
          className={props.imgClassName}
          data-testid={props.imgTestId}
          loading={props.loading}
          style={crop && { objectPosition: `${crop.x * 100}% ${crop.y * 100}%` }}
          onLoad={(e) => {
            const img = e.currentTarget;
            if (src) setNatural({ src, width: img.naturalWidth, height: img.naturalHeight });
          }}
        />
        {size &&
          dogs.map((d) => {
            const place = placeBox(d.box, size.width, size.height, fit, crop);
            if (!place) return null;
            const current = d.index === selected || (!several && selected === undefined);
            // The boxes are for pointers; keyboards and screen readers pick with the buttons below.
            return (
              <span
                key={d.index}
                className={`dog-box${current ? " current" : ""}${pick ? " pickable" : ""}`}
                style={{ left: `${place.left}%`, top: `${place.top}%`, width: `${place.width}%`, height: `${place.height}%` }}
                onClick={pick && (() => pick(d.index))}
                aria-hidden="true"
                data-testid="dog-box"
                data-current={current ? "" : undefined}
              >
                {several && <span className="dog-box-tag">{d.index + 1}</span>}
              </span>
            );
          })}
      </div>
      {onSelect && several && (
        <div className="dog-choice" role="group" aria-label="Which dog">
          {/* aria-disabled, not disabled: the button just pressed keeps the keyboard's focus while the page works */}
          {dogs.map((d) => (
            <button
              key={d.index}
              type="button"
              className={`button small${d.index === selected ? "" : " secondary"}`}
              aria-pressed={d.index === selected}
              aria-disabled={disabled || undefined}
              onClick={() => !disabled && onSelect(d.index)}
            >
              Dog {d.index + 1}
            </button>
          ))}
        </div>
      )}
    </div>
  );
}
