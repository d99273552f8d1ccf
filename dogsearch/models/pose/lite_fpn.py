"""The default pose model, ``"lite0-fpn"``: the PoseNet of ``net.py`` (EfficientNet-Lite0 trunk from the registry
package + an FPN heatmap head) with the trained layers shipped in models/pose-lite0-fpn/ (checksums verified)."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dogsearch.core.paths import MODELS_DIR
from dogsearch.inference.device import resolve_device
from dogsearch.models.pose import crop as C
from dogsearch.models.pose import keypoints as K
from dogsearch.models.pose.model import BoxPose, PoseModelError
from dogsearch.models.registry import register_pose_model
from dogsearch.models.weights import WeightsError, load_checked_files

DEFAULT_WEIGHTS_DIR = MODELS_DIR / "pose-lite0-fpn"


@register_pose_model("lite0-fpn")
def lite0_fpn(*, weights_dir: str | Path | None = None, device: str = "cpu", precision: str = "fp32",
              flip_test: bool = False, runtime: str = "torch", threads: int | None = None,
              cache_dir: str | Path | None = None, **_) -> LiteFpnPoseModel:
    return LiteFpnPoseModel(weights_dir, device=device, precision=precision, flip_test=flip_test, runtime=runtime,
                            threads=threads, cache_dir=cache_dir)


class LiteFpnPoseModel:
    """``runtime``: what runs the network (``dogsearch.inference.runtimes``): ``"torch"``, or ``"onnxruntime"``, its
    ONNX export (cached in ``cache_dir``) with ``threads`` intra-op threads, the same keypoints to ~1e-4 px."""

    def __init__(self, weights_dir: str | Path | None = None, *, device: str = "cpu", precision: str = "fp32",
                 flip_test: bool = False, runtime: str = "torch", threads: int | None = None,
                 cache_dir: str | Path | None = None) -> None:
        from dogsearch.inference import runtimes
        from dogsearch.models.pose.net import PoseNet
        from dogsearch.models.registry import DEFAULT_CACHE_DIR

        folder = Path(weights_dir) if weights_dir else DEFAULT_WEIGHTS_DIR
        config_path = folder / "config.json"
        if not config_path.is_file():
            raise PoseModelError(f"pose weights not found: {config_path} is missing (train them with "
                                 "`dogsearch train pose`, or set DOGSEARCH_POSE_WEIGHTS_DIR)")
        self.config = json.loads(config_path.read_text())
        states = load_checked_files(folder, self.config["files"], PoseModelError, "pose weights")
        self.device = resolve_device(device)
        try:
            net = PoseNet()
            net.load_trained_state(states["trunk.safetensors"], states["head.safetensors"])
        except WeightsError as exc:
            raise PoseModelError(f"the pose model's backbone weights could not be loaded: {exc}") from exc
        except (KeyError, ValueError, RuntimeError) as exc:
            raise PoseModelError(f"pose weights in {folder} do not fit the network: {exc}") from exc
        try:
            runtimes.check_runtime(runtime, str(self.device), precision)
        except ValueError as exc:
            raise PoseModelError(f"pose model: {exc}") from exc
        self.precision = precision
        self.flip_test = flip_test
        self.input_size = int(self.config["input_size"])
        self.names = tuple(self.config["keypoints"])
        self.model_id = f"{self.config['name']}@{self.config['files']['head.safetensors'][:8]}"
        self._flip_perm = K.flip_permutation(len(self.names))
        net = net.to(self.device).eval()
        if runtime == "onnxruntime":
            path = runtimes.cached_onnx(net, self.model_id, (3, self.input_size, self.input_size),
                                        cache_dir or DEFAULT_CACHE_DIR)
            self.forward: runtimes.Forward = runtimes.OnnxForward(path, threads)
        else:
            self.forward = runtimes.TorchForward(net, self.device, precision)

    @property
    def runtime(self) -> str:
        return self.forward.runtime

    def predict(self, image: Image.Image, boxes: np.ndarray) -> list[BoxPose]:
        return self.predict_many([(image, boxes)])[0]

    def predict_many(self, items: Sequence[tuple[Image.Image, np.ndarray]]) -> list[list[BoxPose]]:
        """The boxes of several photos in one forward pass: how the service batches requests."""
        from dogsearch.models.pose.net import decode_heatmaps, to_input

        crops, matrices, owners = [], [], []
        for owner, (image, boxes) in enumerate(items):
            for box in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
                matrix = C.box_affine(box, self.input_size)
                crops.append(C.warp(image, matrix, self.input_size))
                matrices.append(matrix)
                owners.append(owner)
        results: list[list[BoxPose]] = [[] for _ in items]
        if not crops:
            return results
        x = to_input(crops).to(self.device)
        with torch.inference_mode():
            if self.flip_test:  # the crops and their mirror images in one run
                both = self.forward(torch.cat([x, torch.flip(x, dims=[3])])).float()
                heatmaps, flipped = both[: len(crops)], both[len(crops):]
                heatmaps = 0.5 * (heatmaps + torch.flip(flipped, dims=[3])[:, self._flip_perm])
            else:
                heatmaps = self.forward(x).float()
        coords, scores = decode_heatmaps(heatmaps.cpu())
        for i, (matrix, owner) in enumerate(zip(matrices, owners, strict=True)):
            points = C.apply(C.invert(matrix), coords[i].numpy()).astype(np.float32)
            results[owner].append(BoxPose(points, scores[i].numpy(), self.names))
        return results
