"""Embedding the dogs of a photo rather than the photo: the detector's boxes, each dog's crop (core/boxes.py's margin)
embedded by the embedding model, breed guesses for each crop and what the whole photo seems to show (the dog
classifier). The detector and the classifier are built once, lazily, behind a lock like the embedding model, and run
batched on inference threads of their own: never on the event loop."""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from PIL import Image

from dogsearch.core.boxes import DEFAULT_MARGIN, BadBox, area, as_box, clip_marked, expand
from dogsearch.core.images import DecodedImage
from dogsearch.inference.runner import BatchedModel
from dogsearch.models.detect import Detection, Detector, detect_many
from dogsearch.models.dogclass import Classification, DogClassifier

Box = tuple[float, float, float, float]


def crop_model_id(model_id: str, margin: float = DEFAULT_MARGIN) -> str:
    """The id of a model's vectors of dog crops: another vector space than its whole photos', so a gallery of whole
    photos raises ModelMismatch and `dogsearch reindex` moves it."""
    return f"{model_id}@dogcrop-m{margin:g}"


class DetectorCache(BatchedModel[Detector, Image.Image, list[Detection]]):
    def __init__(self, factory: Callable[[], Detector], **batching: Any) -> None:
        super().__init__(factory, "detector", detect_many, unavailable="dog detector unavailable", **batching)

    async def second_look(self, images: Sequence[Image.Image], photos: Sequence[Classification]
                          ) -> list[Detection | None]:
        """The detector's second look at photos it found no dog in, given their whole photos' classifications
        (lite0-centernet's ``second_look``), on its inference threads; None for each where it has none. Only
        photos the classifier calls a dog come here: a few of the dog photos, none of the others."""
        detector = await self.aget()
        look = getattr(detector, "second_look", None)
        if look is None or not images:
            return [None] * len(images)
        return await asyncio.get_running_loop().run_in_executor(self._executor, look, list(images), list(photos))


class ClassifierCache(BatchedModel[DogClassifier, Image.Image, Classification]):
    def __init__(self, factory: Callable[[], DogClassifier], **batching: Any) -> None:
        super().__init__(factory, "classifier", lambda clf, images: clf.classify(list(images)),
                         unavailable="dog classifier unavailable", **batching)


@dataclass(frozen=True)
class Dog:
    box: Box  # in the photo's own pixels
    score: float | None  # None: no detector judged it (the whole photo, or a marked box)
    crop: Image.Image  # what the models see, from the decoded (maybe shrunk) image
    classification: Classification | None = None  # the classifier's answer, where the detector's verifier gave it
    marked: bool = False  # the request's own box: no detector was asked


@dataclass(frozen=True)
class Found:
    width: int
    height: int
    dogs: list[Dog]
    seems: Classification | None = None  # the whole photo's classification, where it was needed to find the dogs


def crop_at_most(image: Image.Image, box: Box, margin: float, side: int | None) -> Image.Image:
    """core/boxes.crop's crop, averaged down in the same pass until its shorter side is `side` (the most a model
    decodes a photo at): no full-size copy of a large dog is made."""
    left, top, right, bottom = expand(box, margin, image.width, image.height)
    width, height = right - left, bottom - top
    scale = 1.0 if side is None else min(1.0, side / min(width, height))
    if scale == 1.0:
        return image.crop((left, top, right, bottom))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.BOX, box=(left, top, right, bottom))


def dogs_of(decoded: DecodedImage, detections: Sequence[Detection] | None, whole_if_none: bool,
            margin: float = DEFAULT_MARGIN, crop_side: int | None = None, seems: Classification | None = None) -> Found:
    """A photo's dogs, largest box first; `detections` in the decoded image's pixels (None: no detector ran, the whole
    photo is the dog). Crops are at most `crop_side` on their shorter side. `seems`: the whole photo's
    classification if it is known already (it is then the whole-photo dog's too). Blocking (the crops copy pixels)."""
    image = decoded.image
    sx, sy = decoded.width / image.width, decoded.height / image.height  # a JPEG may have shrunk on load
    whole = Dog((0.0, 0.0, float(decoded.width), float(decoded.height)), None, image, seems)
    if detections is None or (not detections and whole_if_none):
        return Found(decoded.width, decoded.height, [whole], seems)
    dogs = []
    for d in sorted(detections, key=lambda d: -area(d.box)):
        x0, y0, x1, y1 = d.box
        box = (round(x0 * sx, 1), round(y0 * sy, 1), round(x1 * sx, 1), round(y1 * sy, 1))
        dogs.append(Dog(box, round(float(d.score), 4), crop_at_most(image, d.box, margin, crop_side),
                        d.classification))
    return Found(decoded.width, decoded.height, dogs, seems)


def marked_boxes(text: str | None, decoded: Sequence[DecodedImage | None]) -> list[Box | None]:
    """The boxes a request marked, a JSON list with one [x0, y0, x1, y1] (the photo's pixels) or null an image,
    each clipped to its photo (None: one that could not be read has none); BadBox naming the image when one is not a
    box or holds too little of its photo."""
    if text is None:
        return [None] * len(decoded)
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, list) or len(value) != len(decoded):
        raise BadBox(f"boxes: a JSON list with one [x0, y0, x1, y1] or null for each of the {len(decoded)} images")
    boxes = []
    for n, (d, box) in enumerate(zip(decoded, value, strict=True)):
        try:
            boxes.append(None if box is None or d is None else clip_marked(as_box(box), d.width, d.height))
        except BadBox as exc:
            if len(decoded) == 1:
                raise
            raise BadBox(f"image {n}: {exc.reason}") from None
    return boxes


def marked_dog(decoded: DecodedImage, box: Box, margin: float = DEFAULT_MARGIN, crop_side: int | None = None) -> Found:
    """A photo whose dog the request marked (`box`, clipped to the photo's pixels): that dog alone. Blocking."""
    image = decoded.image
    sx, sy = image.width / decoded.width, image.height / decoded.height
    scaled = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
    return Found(decoded.width, decoded.height,
                 [Dog(box, None, crop_at_most(image, scaled, margin, crop_side), marked=True)])


class DogModels:
    """The detector (None: off) and the classifier beside the embedding model; one lifespan and readiness for all."""

    def __init__(self, embedder: BatchedModel, detector: DetectorCache | None, classifier: ClassifierCache) -> None:
        self.embedder, self.detector, self.classifier = embedder, detector, classifier

    @property
    def all(self) -> list[BatchedModel]:
        return [m for m in (self.embedder, self.detector, self.classifier) if m is not None]

    @asynccontextmanager
    async def running(self, preload: bool) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for model in self.all:
                await stack.enter_async_context(model.running(preload))
            yield

    def readiness(self, preload: bool, lazy_is_ready: bool = False) -> str | None:
        """The embedding model's; the detector's and the classifier's once they failed, or while they preload
        (lazily, they load on the first request that finds dogs)."""
        reasons = [self.embedder.readiness(preload, lazy_is_ready)]
        reasons += [m.readiness(preload, lazy_is_ready=True) for m in self.all[1:]]
        return "; ".join(dict.fromkeys(r for r in reasons if r)) or None

    async def find(self, decoded: Sequence[DecodedImage], whole_if_none: bool, crop_side: int,
                   whole_photo_dog: float | None = None, marked: Sequence[Box | None] | None = None,
                   second_look: bool = False) -> list[Found]:
        """Each photo's dogs: the detector's, or the one box `marked` gives for that photo (the detector is not
        asked about it). `second_look`: a dog the detector missed may be its second look's box (`_missed_dogs`)."""
        marked = list(marked) if marked is not None else [None] * len(decoded)
        detections: list[list[Detection] | None] = [None] * len(decoded)
        seems: list[Classification | None] = [None] * len(decoded)
        todo = [i for i, box in enumerate(marked) if box is None]
        if self.detector is not None and todo:
            for i, found in zip(todo, await self.detector.submit([decoded[i].image for i in todo]), strict=True):
                detections[i] = found
            if whole_photo_dog is not None:
                await self._missed_dogs(decoded, detections, seems, whole_photo_dog, second_look)

        def dogs() -> list[Found]:
            return [dogs_of(d, found, whole_if_none, crop_side=crop_side, seems=cls) if box is None else
                    marked_dog(d, box, crop_side=crop_side)
                    for d, found, cls, box in zip(decoded, detections, seems, marked, strict=True)]

        return await asyncio.to_thread(dogs)

    async def _missed_dogs(self, decoded: Sequence[DecodedImage], detections: list, seems: list,
                           min_p: float, second_look: bool = False) -> None:
        """A dog the detector missed (a few in a hundred held-out photos, docs/detection.md) when the classifier
        sees a dog in the whole photo: with `second_look`, the detector's second look at it (its first candidate,
        at a lower point, where it is small in the photo), else the whole photo. "No dog found" then needs both to
        say so. The whole photos' classifications go to `seems`: `classify` does not run them again."""
        empty = [i for i, found in enumerate(detections) if found == []]  # None: a marked photo, not looked at
        if not empty:
            return
        classes = await self.classifier.submit([decoded[i].image for i in empty])
        dogs = [(i, cls) for i, cls in zip(empty, classes, strict=True) if cls.dog >= min_p]
        again = await self.detector.second_look([decoded[i].image for i, _ in dogs], [cls for _, cls in dogs]) \
            if second_look else [None] * len(dogs)
        for i, cls in zip(empty, classes, strict=True):
            seems[i] = cls
        for (i, cls), box in zip(dogs, again, strict=True):
            image = decoded[i].image
            detections[i] = [box or Detection((0.0, 0.0, float(image.width), float(image.height)), cls.dog, cls)]

    async def classify(self, decoded: Sequence[DecodedImage], found: Sequence[Found], every_photo: bool = True
                       ) -> tuple[list[Classification | None], list[list[Classification]]]:
        """(each whole photo's, each photo's dogs'), in one batch of what is not known yet: each image passes the
        classifier once (a verified box's crop was classified by the detector, a whole photo maybe by `find`, and
        a dog that is the whole photo is classified as the photo). `every_photo` False: a whole photo is classified
        only where it is needed (no dog in it, or it is the dog), else its classification is None."""
        def whole(d: DecodedImage, photo: Found) -> bool:
            return photo.seems is None and (every_photo or not photo.dogs or
                                            any(dog.crop is d.image for dog in photo.dogs))

        wanted = [whole(d, photo) for d, photo in zip(decoded, found, strict=True)]
        todo: list[Image.Image] = [d.image for d, want in zip(decoded, wanted, strict=True) if want]
        todo += [dog.crop for d, photo in zip(decoded, found, strict=True) for dog in photo.dogs
                 if dog.classification is None and dog.crop is not d.image]
        answers = iter(await self.classifier.submit(todo) if todo else [])
        photos = [photo.seems or (next(answers) if want else None) for photo, want in zip(found, wanted, strict=True)]
        dogs = [[dog.classification or (seems if dog.crop is d.image else next(answers)) for dog in photo.dogs]
                for d, photo, seems in zip(decoded, found, photos, strict=True)]
        return photos, dogs


class DogCropModel:
    """The embedding model on each dog the detector finds, blocking, as the embedder service embeds them: what
    `dogsearch reindex` re-embeds a gallery with (gallery/reindex.py's `DogCropper`)."""

    def __init__(self, model: Any, detector: Detector, classifier: DogClassifier, *, decode_side: int = 768,
                 margin: float = DEFAULT_MARGIN) -> None:
        self.model, self.detector, self.classifier, self.margin = model, detector, classifier, margin
        self.model_id, self.dim = crop_model_id(model.model_id, margin), model.dim
        self.decode_side = max(model.decode_side, decode_side)

    def preprocess(self, image: Image.Image) -> Any:
        return self.model.preprocess(image)

    def embed(self, batch: Any) -> Any:
        return self.model.embed(batch)

    def dogs(self, image: Image.Image, width: int, height: int) -> list[tuple[Box | None, Image.Image, list[dict]]]:
        """A photo's dogs, largest first, each (its box in the photo's `width` x `height` pixels, None for the whole
        photo when no dog is found; its crop; its breed guesses)."""
        decoded = DecodedImage(format="", width=width, height=height, image=image)
        found = dogs_of(decoded, self.detector.detect(image), whole_if_none=True, margin=self.margin,
                        crop_side=self.model.decode_side)
        todo = [dog.crop for dog in found.dogs if dog.classification is None]  # not verified by the detector
        answers = iter(self.classifier.classify(todo) if todo else [])
        return [(None if dog.score is None else dog.box, dog.crop, breeds(dog.classification or next(answers)))
                for dog in found.dogs]


def breeds(cls: Classification) -> list[dict]:
    return [{"breed": x.name, "p": x.p} for x in cls.breeds]
