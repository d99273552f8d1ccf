import type { ImgHTMLAttributes } from "react";
import { useImageSrc } from "../lib/images";

type Props = Omit<ImgHTMLAttributes<HTMLImageElement>, "src"> & { src: string | null | undefined };

/** An <img> of an API photo that works with a key too; a placeholder of the same class while it loads. */
export function ApiImage({ src, alt, className, ...rest }: Props) {
  const { src: shown, failed } = useImageSrc(src);
  if (!shown) {
    return (
      <span
        className={`img-placeholder ${className ?? ""}`}
        role="img"
        aria-label={failed ? `${alt} (could not be loaded)` : `${alt} (loading)`}
        data-image-loading={failed ? undefined : ""}
        data-image-failed={failed ? "" : undefined}
      />
    );
  }
  return <img src={shown} alt={alt} className={className} {...rest} />;
}
