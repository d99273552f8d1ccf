import { useEffect, useRef, useState } from "react";
import { messageOf, photoTaken } from "./api";
import type { Taken } from "./reports";

/**
 * Asks the server, when the user wants it, where and when `photo` was taken (POST /v1/taken). `note` says what
 * came of it, or is null; an answer about a photo that is no longer the picked one is dropped.
 */
export function useTaken(photo: File | null | undefined) {
  const [note, setNote] = useState<string | null>(null);
  const asked = useRef<File | null>(null);

  useEffect(() => {
    asked.current = null;
    setNote(null);
  }, [photo]);

  /** What the photo says (`describe` puts it in words for the note); null on a failure or a photo since replaced. */
  const ask = async (describe: (taken: Taken) => string): Promise<Taken | null> => {
    if (!photo) return null;
    asked.current = photo;
    setNote("Reading the photo…");
    try {
      const taken = await photoTaken(photo);
      if (asked.current !== photo) return null;
      setNote(describe(taken));
      return taken;
    } catch (e) {
      if (asked.current === photo) setNote(messageOf(e));
      return null;
    }
  };
  return { note, ask };
}
