from __future__ import annotations

from pydantic import BaseModel, Field


class ModelInfo(BaseModel):
    model: str = Field(..., description="the id of the vectors /v1/embed/dogs gives (what a gallery stores)")
    base_model: str = Field(..., description="the embedding model's own id: the vectors /v1/embed gives")
    detector: str = Field(..., description="the dog detector, or 'none'")
    dim: int
    device: str
    precision: str
    runtime: str = Field(..., description="what runs the network: 'torch', 'onnxruntime' or 'openvino'")
    data_config: dict


class EmbedResponse(BaseModel):
    model: str
    dim: int
    vectors: list[list[float]] | list[str] = Field(
        ..., description="one per image, in order: numbers, or with ?encoding=base64 the base64 of dim "
                         "little-endian float32 values")


class BreedGuess(BaseModel):
    breed: str
    p: float = Field(..., description="how likely this breed is, given that it is a dog")


class Seems(BaseModel):
    label: str = Field(..., description="an ImageNet class")
    p: float


class FoundDog(BaseModel):
    box: list[float] = Field(..., description="[x0, y0, x1, y1] in the photo's pixels (EXIF orientation applied)")
    score: float | None = Field(..., description="the detector's confidence; null: the box was marked in the request "
                                                 "(marked true), or no detector ran and it is the whole photo")
    marked: bool = Field(False, description="the box the request marked for this photo, not a detector's")
    vector: list[float] | str | None = Field(
        None, description="its crop's vector: numbers, or with ?encoding=base64 the base64 of dim little-endian "
                          "float32 values; null with ?vectors=false")
    breed_guess: list[BreedGuess] = Field(..., description="the likeliest breeds of the crop, best first")


class PhotoDogs(BaseModel):
    width: int
    height: int
    dogs: list[FoundDog] = Field(..., description="largest box first; empty: no dog found")
    seems: list[Seems] = Field(..., description="what the whole photo seems to show, likeliest first")
    phash: str | None = Field(..., description="with ?phash=true, the whole photo's perceptual hash (dHash, 16 hex "
                                               "digits): a resized or recompressed copy differs in a few bits, so "
                                               "a new photo's copies are found without decoding it again")


class Unreadable(BaseModel):
    """A photo that could not be read, answered alone (?partial=true)."""

    error: str = Field(..., description="why, as the request's 4xx would have said it")
    code: str = Field(..., description="the error's stable name, as in an error answer")
    status: int = Field(..., description="the status the request would have been refused with")


class DogsResponse(BaseModel):
    model: str = Field(..., description="the vectors' id: the model, and how dogs are cropped for it")
    dim: int
    detector: str = Field(..., description="the detector's name, or 'none'")
    photos: list[PhotoDogs | Unreadable] = Field(..., description="one per image, in order")
