"""Pose models: photo + dog boxes in, keypoints (x, y, score) per box out.

* ``LiteFpnPoseModel`` (``"lite0-fpn"``, the default): trained here (see models/pose-lite0-fpn/MODEL_CARD.md);
  EfficientNet-Lite0 from the registry package plus the shipped trained layers. 17 AP-10K keypoints + tail tip.
* ``MMPoseModel`` (``"hrnet-w32-ap10k"``): OpenMMLab's HRNet-W32 AP-10K model through MMPose, from a checkpoint
  the user supplies (none can be downloaded here). 17 AP-10K keypoints.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from PIL import Image

from dogsearch.core.paths import MODELS_DIR
from dogsearch.inference.device import autocast, resolve_device
from dogsearch.models.pose import crop as C
from dogsearch.models.pose import keypoints as K
from dogsearch.models.weights import WeightsError, load_state_dict_file, sha256_file

DEFAULT_WEIGHTS_DIR = MODELS_DIR / "pose-lite0-fpn"
MMPOSE_CONFIG_NAME = "td-hm_hrnet-w32_8xb64-210e_ap10k-256x256.py"
MMPOSE_INSTALL_HINT = "install MMPose with `scripts/install-mmpose.sh` (or `make setup-mmpose`)"


class PoseModelError(RuntimeError):
    """The pose model cannot be built: missing files, packages or a bad checkpoint."""


@dataclass(frozen=True)
class BoxPose:
    points: np.ndarray  # (J, 2) photo pixels
    scores: np.ndarray  # (J,) 0..1
    names: tuple[str, ...]  # J names: AP-10K's 17, optionally followed by extras (tail_end)


class PoseModel(Protocol):
    model_id: str

    def predict(self, image: Image.Image, boxes: np.ndarray) -> list[BoxPose]:
        """RGB photo and (N, 4) x1 y1 x2 y2 boxes -> one BoxPose per box."""


class LiteFpnPoseModel:
    def __init__(self, weights_dir: str | Path | None = None, *, device: str = "cpu", precision: str = "fp32",
                 flip_test: bool = False) -> None:
        from dogsearch.models.pose.net import PoseNet

        folder = Path(weights_dir) if weights_dir else DEFAULT_WEIGHTS_DIR
        config_path = folder / "config.json"
        if not config_path.is_file():
            raise PoseModelError(f"pose weights not found: {config_path} is missing (train them with "
                                 "`dogsearch train pose`, or set DOGSEARCH_POSE_WEIGHTS_DIR)")
        self.config = json.loads(config_path.read_text())
        states = {}
        for fname, digest in self.config["files"].items():
            path = folder / fname
            if not path.is_file():
                raise PoseModelError(f"pose weights file {path} is missing")
            if sha256_file(path) != digest:
                raise PoseModelError(f"checksum mismatch for {path}: expected sha256 {digest}; the file is "
                                     "corrupt or from another training run")
            states[fname] = load_state_dict_file(path)
        self.device = resolve_device(device)
        try:
            net = PoseNet()
            net.load_trained_state(states["trunk.safetensors"], states["head.safetensors"])
        except WeightsError as exc:
            raise PoseModelError(f"the pose model's backbone weights could not be loaded: {exc}") from exc
        except (KeyError, ValueError, RuntimeError) as exc:
            raise PoseModelError(f"pose weights in {folder} do not fit the network: {exc}") from exc
        self.net = net.to(self.device).eval()
        self.precision = precision
        self.flip_test = flip_test
        self.input_size = int(self.config["input_size"])
        self.names = tuple(self.config["keypoints"])
        self.model_id = f"{self.config['name']}@{self.config['files']['head.safetensors'][:8]}"
        self._flip_perm = K.flip_permutation(len(self.names))

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
        with torch.inference_mode(), autocast(self.device, self.precision):
            heatmaps = self.net(x).float()
            if self.flip_test:
                flipped = self.net(torch.flip(x, dims=[3])).float()
                heatmaps = 0.5 * (heatmaps + torch.flip(flipped, dims=[3])[:, self._flip_perm])
        coords, scores = decode_heatmaps(heatmaps.cpu())
        for i, (matrix, owner) in enumerate(zip(matrices, owners, strict=True)):
            points = C.apply(C.invert(matrix), coords[i].numpy()).astype(np.float32)
            results[owner].append(BoxPose(points, scores[i].numpy(), self.names))
        return results


class MMPoseModel:
    """HRNet-W32 (or any MMPose AP-10K top-down model) from a user-supplied checkpoint."""

    def __init__(self, checkpoint: str | Path | None, *, config: str | Path | None = None,
                 device: str = "cpu") -> None:
        if not checkpoint:
            raise PoseModelError("model 'hrnet-w32-ap10k' needs a checkpoint: set DOGSEARCH_POSE_CHECKPOINT to "
                                 "OpenMMLab's hrnet_w32_ap10k_256x256 .pth file")
        checkpoint = Path(checkpoint).expanduser()
        if not checkpoint.is_file():
            raise PoseModelError(f"checkpoint {checkpoint} does not exist")
        try:
            from mmpose.apis import inference_topdown, init_model
        except ImportError as exc:
            raise PoseModelError(f"model 'hrnet-w32-ap10k' needs MMPose, which could not be imported "
                                 f"({type(exc).__name__}: {exc}): {MMPOSE_INSTALL_HINT}") from exc
        config_path = Path(config) if config else mmpose_config_path()
        try:
            self._model = init_model(str(config_path), checkpoint=None, device=device)
            _load_whole_checkpoint(self._model, checkpoint)
        except PoseModelError:
            raise
        except Exception as exc:  # mmengine raises many types for a wrong file
            raise PoseModelError(f"MMPose could not load {checkpoint} with {config_path.name}: {exc}") from exc
        self._inference = inference_topdown
        self.model_id = f"mmpose-hrnet-w32-ap10k@{sha256_file(checkpoint)[:8]}"

    def predict(self, image: Image.Image, boxes: np.ndarray) -> list[BoxPose]:
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        if len(boxes) == 0:
            return []
        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
        samples = self._inference(self._model, bgr, boxes, bbox_format="xyxy")
        out = []
        for sample in samples:
            inst = sample.pred_instances
            out.append(BoxPose(np.asarray(inst.keypoints[0], dtype=np.float32),
                               np.clip(np.asarray(inst.keypoint_scores[0], dtype=np.float32), 0, 1),
                               K.AP10K_NAMES))
        return out


def _load_whole_checkpoint(model: torch.nn.Module, checkpoint: Path) -> None:
    """Loads every weight of `model` from an OpenMMLab checkpoint, or raises PoseModelError. MMPose's own loader
    only logs missing weights, so a checkpoint of another network would serve random keypoints."""
    from mmengine.runner.checkpoint import _load_checkpoint

    saved = _load_checkpoint(str(checkpoint), map_location="cpu")
    state = saved.get("state_dict", saved) if isinstance(saved, dict) else saved
    state = {k.removeprefix("module."): v for k, v in state.items()}
    try:
        missing = model.load_state_dict(state, strict=False).missing_keys
    except RuntimeError as exc:  # a weight of the wrong shape
        raise PoseModelError(f"{checkpoint} does not fit the HRNet-W32 AP-10K model: {exc}") from exc
    if missing:
        raise PoseModelError(f"{checkpoint} is not an HRNet-W32 AP-10K checkpoint: {len(missing)} of "
                             f"{len(model.state_dict())} weights missing (e.g. {', '.join(missing[:3])})")
    meta = saved.get("meta", {}) if isinstance(saved, dict) else {}
    if "dataset_meta" in meta:  # keypoint names, flip pairs, as the checkpoint was trained
        model.dataset_meta = meta["dataset_meta"]


def mmpose_config_path() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("mmpose")
    if spec is None or not spec.submodule_search_locations:
        raise PoseModelError(f"mmpose is not installed: {MMPOSE_INSTALL_HINT}")
    root = Path(next(iter(spec.submodule_search_locations)))
    path = root / ".mim" / "configs" / "animal_2d_keypoint" / "topdown_heatmap" / "ap10k" / MMPOSE_CONFIG_NAME
    if not path.is_file():
        raise PoseModelError(f"the mmpose package has no {MMPOSE_CONFIG_NAME} (looked at {path}); set "
                             "DOGSEARCH_POSE_MMPOSE_CONFIG")
    return path


def create_pose_model(name: str = "lite0-fpn", *, weights_dir=None, checkpoint=None, mmpose_config=None,
                      device: str = "cpu", precision: str = "fp32", flip_test: bool = False) -> PoseModel:
    if name == "lite0-fpn":
        return LiteFpnPoseModel(weights_dir, device=device, precision=precision, flip_test=flip_test)
    if name == "hrnet-w32-ap10k":
        return MMPoseModel(checkpoint, config=mmpose_config, device=device)
    raise ValueError(f"unknown pose model {name!r}: use 'lite0-fpn' or 'hrnet-w32-ap10k'")
