"""Python client of the embedder's HTTP API; implements the gallery's Embedder contract."""
from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from dogsearch.core.errors import InvalidInput
from dogsearch.core.vectors import decode_f32
from dogsearch.gallery.contracts import Box, DogsEmbedding, FoundDog, PhotoDogs
from dogsearch.services.errors import from_response
from dogsearch.services.http import ServiceClient


class EmbedderClient(ServiceClient):
    service = "embedder"

    async def info(self) -> dict:
        return (await self.request("GET", "/v1/info")).json()

    async def embed(self, images: Sequence[bytes]) -> tuple[str, np.ndarray]:
        """Raw image files in; (model id, float32 array of shape (n, dim)) of the whole photos out."""
        body = (await self.request("POST", "/v1/embed", params={"encoding": "base64"}, files=_files(images))).json()
        return body["model"], np.stack([decode_f32(v) for v in body["vectors"]])

    async def embed_dogs(self, images: Sequence[bytes], *, whole_if_none: bool = False,
                         vectors: bool = True, seems: bool = True, partial: bool = False, phash: bool = False,
                         boxes: Sequence[Box | None] | None = None) -> DogsEmbedding:
        params = {"encoding": "base64", "whole_if_none": str(whole_if_none).lower(), "vectors": str(vectors).lower(),
                  "seems": str(seems).lower(), "partial": str(partial).lower(), "phash": str(phash).lower()}
        marked = {"boxes": json.dumps([None if b is None else list(b) for b in boxes])} if boxes else None
        body = (await self.request("POST", "/v1/embed/dogs", params=params, files=_files(images), data=marked)).json()
        return DogsEmbedding(body["model"], body["detector"], tuple(self._photo(photo) for photo in body["photos"]))

    def _photo(self, photo: dict) -> PhotoDogs | InvalidInput:
        if "error" in photo:  # could not be read (partial): the error the request would have raised
            return from_response(self.service, photo["status"], {"detail": photo["error"], "code": photo["code"]},
                                 named=False)
        dogs = tuple(FoundDog(tuple(dog["box"]), dog["score"],
                              decode_f32(dog["vector"]) if dog.get("vector") is not None else None,
                              tuple(dog["breed_guess"]), dog.get("marked", False))
                     for dog in photo["dogs"])
        hashed = photo.get("phash")
        return PhotoDogs(photo["width"], photo["height"], dogs, tuple(photo["seems"]),
                         None if hashed is None else int(hashed, 16))


def _files(images: Sequence[bytes]) -> list:
    return [("images", (f"{i}", data, "application/octet-stream")) for i, data in enumerate(images)]
