"""``"hrnet-w32-ap10k"``: OpenMMLab's HRNet-W32 AP-10K model through MMPose, from a checkpoint the user supplies
(none can be downloaded here); MMPose is an optional install (scripts/install-mmpose.sh)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dogsearch.models.pose import keypoints as K
from dogsearch.models.pose.model import BoxPose, PoseModelError
from dogsearch.models.registry import register_pose_model
from dogsearch.models.weights import sha256_file

MMPOSE_CONFIG_NAME = "td-hm_hrnet-w32_8xb64-210e_ap10k-256x256.py"
MMPOSE_INSTALL_HINT = "install MMPose with `scripts/install-mmpose.sh` (or `make setup-mmpose`)"


@register_pose_model("hrnet-w32-ap10k")
def hrnet_w32_ap10k(*, checkpoint: str | Path | None = None, mmpose_config: str | Path | None = None,
                    device: str = "cpu", **_) -> MMPoseModel:
    return MMPoseModel(checkpoint, config=mmpose_config, device=device)


class MMPoseModel:
    """HRNet-W32 (or any MMPose AP-10K top-down model) from a user-supplied checkpoint."""

    runtime = "torch"  # MMPose runs its own network

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
