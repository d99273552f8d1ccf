import { previewOfPhoto } from "./api";

/** Whether the browser decodes the image at `url` (a phone's HEIC: only Safari does). */
function decodes(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const img = new Image();
    img.onload = () => resolve(true);
    img.onerror = () => resolve(false);
    img.src = url;
  });
}

/**
 * A URL the browser can show for a picked photo: `url`, the file's own object URL, where the browser decodes it;
 * else an object URL of the server's JPEG of it (`url` released). `url` still where the server makes none either:
 * the search or the add then says what is wrong with the file.
 */
export async function showable(file: File, url: string): Promise<string> {
  if (await decodes(url)) return url;
  try {
    const shown = URL.createObjectURL(await previewOfPhoto(file));
    URL.revokeObjectURL(url);
    return shown;
  } catch {
    return url;
  }
}
