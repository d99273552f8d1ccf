"""The parts a fusion is made of, computed once per photo and cached: the fine-tuned ViT's vector, the CNN's pooled
features and its ImageNet logits. Both networks see the same 224-px crop (their eval transforms differ only in
mean and std), one decode a photo, so a fusion trained or weighed on these is what the served model computes.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from dogsearch.models.embedding import pixels as uint8_pixels

PARTS = ("vit", "cnn", "logits")


class PartExtractor:
    """Runs the ViT (``vit_model``, any registry name) and EfficientNet-Lite0 with its ImageNet head on photos."""

    def __init__(self, vit_model: str, *, device: str = "cpu") -> None:
        import timm.data

        from dogsearch.models.efficientnet import LITE0_MODEL
        from dogsearch.models.embedding import split_eval_transform
        from dogsearch.models.registry import build_backbone

        self.device = torch.device(device)
        self.vit, self.vit_id, vit_config = build_backbone(vit_model)
        self.cnn, self.cnn_id, cnn_config = build_backbone(LITE0_MODEL, num_classes=1000)
        self.vit.to(self.device).eval()
        self.cnn.to(self.device).eval()
        self.resize, self.vit_mean, self.vit_std = split_eval_transform(
            timm.data.create_transform(**vit_config, is_training=False))
        _, self.cnn_mean, self.cnn_std = split_eval_transform(
            timm.data.create_transform(**cnn_config, is_training=False))
        same = {k: v for k, v in vit_config.items() if k not in ("mean", "std")}
        if same != {k: v for k, v in cnn_config.items() if k not in ("mean", "std")}:
            raise ValueError(f"the two networks crop differently: {vit_config} vs {cnn_config}")

    def pixels(self, image: Image.Image) -> torch.Tensor:
        return uint8_pixels(self.resize(image.convert("RGB")))

    @torch.inference_mode()
    def parts(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """uint8 NCHW -> {"vit": L2-normalised ViT vectors, "cnn": pooled CNN features, "logits": ImageNet logits}."""
        x = batch.to(self.device).float().div_(255)
        vit = F.normalize(self.vit((x - self.vit_mean.to(x)) / self.vit_std.to(x)).float(), dim=1)
        cnn_in = (x - self.cnn_mean.to(x)) / self.cnn_std.to(x)
        pooled = self.cnn.forward_head(self.cnn.forward_features(cnn_in), pre_logits=True).float()
        return {"vit": vit.cpu(), "cnn": pooled.cpu(), "logits": self.cnn.get_classifier()(pooled).float().cpu()}

    def extract(self, paths: Sequence[Path], batch_size: int = 32, desc: str = "parts") -> dict[str, torch.Tensor]:
        out: dict[str, list[torch.Tensor]] = {k: [] for k in PARTS}
        for i in tqdm(range(0, len(paths), batch_size), desc=desc, unit="batch"):
            batch = []
            for path in paths[i:i + batch_size]:
                with Image.open(path) as im:
                    batch.append(self.pixels(im))
            for k, v in self.parts(torch.stack(batch)).items():
                out[k].append(v)
        return {k: torch.cat(v) for k, v in out.items()}


def load_or_extract(extractor: PartExtractor, items: Sequence[tuple[Path, str]], path: Path) -> dict:
    """{"paths", "labels", "vit", "cnn", "logits"} of ``items`` ((photo, label) pairs), cached at ``path``."""
    if path.is_file():
        data = torch.load(path, weights_only=False)
        if data["paths"] == [str(p) for p, _ in items] and data.get("vit_id") == extractor.vit_id:
            return data
    data = {"paths": [str(p) for p, _ in items], "labels": [lab for _, lab in items], "vit_id": extractor.vit_id,
            **extractor.extract([p for p, _ in items], desc=path.stem)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(data, tmp)
    tmp.replace(path)
    return data
