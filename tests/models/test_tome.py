"""Token merging (ToMe, issue 20): r tokens fewer after each block, the class token never merged, merged tokens as
size-weighted means that attention counts by their size; r = 0 is the ViT itself; a config-only model (``"kind":
"tome"``) with its own model id that runs on onnxruntime."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from timm.models.vision_transformer import VisionTransformer

from dogsearch.models import registry as R
from dogsearch.models.tome import _attend, merge, with_token_merging
from dogsearch.models.weights import WeightsError

CONFIG = {"input_size": (3, 56, 56), "mean": (0.5,) * 3, "std": (0.5,) * 3, "interpolation": "bilinear",
          "crop_pct": 0.875, "crop_mode": "center"}


def tiny_vit() -> VisionTransformer:  # 16 patches and the class token
    torch.manual_seed(0)
    return VisionTransformer(img_size=56, patch_size=14, embed_dim=16, depth=3, num_heads=2, num_classes=0).eval()


def test_each_block_merges_r_tokens_and_r_zero_is_the_vit_itself():
    module = tiny_vit()
    x = torch.randn(2, 3, 56, 56)
    merging = with_token_merging(module, 2)
    tokens: list[int] = []
    for block in merging.blocks:  # the MLP runs on what is left after the block's merge
        block.mlp.register_forward_hook(lambda mod, args, out: tokens.append(args[0].shape[1]))
    with torch.no_grad():
        out = merging(x)
        assert tokens == [15, 13, 11]
        assert out.shape == (2, 16)
        assert not torch.allclose(out, module(x), atol=1e-3)
        torch.testing.assert_close(with_token_merging(module, 0)(x), module(x), rtol=0, atol=0)
        assert with_token_merging(module, 100)(x).shape == (2, 16)  # at most half the patches a block
    assert merging.state_dict().keys() == module.state_dict().keys()  # the same weights, a copy
    assert type(module.blocks).__name__ == "Sequential"


def test_the_most_similar_pair_merges_into_a_size_weighted_mean_and_the_class_token_never_merges():
    # tokens: class, then A B A B; the class token's key is the first pair's, which must still not take it
    e = torch.eye(3)
    keys = torch.stack([e[0], e[0], e[0], e[1], e[2]])[None]
    x = torch.arange(15.0).reshape(1, 5, 3)
    out, size = merge(x, keys, None, r=1, prefix=1)
    torch.testing.assert_close(out[0], torch.stack([x[0, 0], x[0, 3], (x[0, 1] + x[0, 2]) / 2, x[0, 4]]))
    assert size[0, :, 0].tolist() == [1, 1, 2, 1]
    out2, size2 = merge(out, torch.stack([e[0], e[1], e[2], e[2]])[None], size, r=1, prefix=1)
    torch.testing.assert_close(out2[0, 1:], torch.stack([out[0, 1], (2 * out[0, 2] + out[0, 3]) / 3]))
    assert size2[0, :, 0].tolist() == [1, 1, 3]


def test_attention_counts_a_merged_token_as_the_tokens_it_stands_for():
    attn = tiny_vit().blocks[0].attn
    a, b = torch.randn(2, 1, 16).unbind(0)
    with torch.no_grad():
        three, _ = _attend(attn, torch.cat([a, b, b], dim=0)[None], None)
        two, _ = _attend(attn, torch.cat([a, b], dim=0)[None], torch.tensor([[[1.0], [2.0]]]))
    torch.testing.assert_close(two[0], three[0, :2])


@pytest.fixture
def tome_model(model_on_base):
    return model_on_base("tiny-tome2", {"kind": "tome", "tome": {"r": 2}}, tiny_vit, CONFIG)


def test_a_merging_vit_is_a_model_of_its_own_on_onnxruntime(tome_model, tmp_path):
    model = R.create_model("tiny-tome2")
    assert model.model_id == "tiny-tome2"
    photos = [Image.fromarray(np.random.default_rng(i).integers(0, 255, (60, 80, 3), dtype=np.uint8))
              for i in range(2)]
    pixels = torch.stack([model.preprocess(p) for p in photos])
    base = R.create_model("tiny-base")
    assert not np.allclose(model.embed(pixels), base.embed(pixels), atol=1e-3)
    onnx = R.create_model("tiny-tome2", runtime="onnxruntime", cache_dir=str(tmp_path / "cache"))
    assert onnx.model_id == "tiny-tome2"
    np.testing.assert_allclose(onnx.embed(pixels[:1]), model.embed(pixels[:1]), atol=1e-5)
    np.testing.assert_allclose(onnx.embed(pixels), model.embed(pixels), atol=1e-5)


@pytest.mark.parametrize("r", [-1, "2", None, True])
def test_a_bad_r_is_a_clear_error(tome_model, r):
    (tome_model / "config.json").write_text(json.dumps({"kind": "tome", "base": "tiny-base", "tome": {"r": r}}))
    with pytest.raises(WeightsError, match="tiny-tome2"):
        R.create_model("tiny-tome2")


def test_only_a_vit_that_pools_its_class_token_merges():
    with pytest.raises(ValueError, match="pools its class token"):
        with_token_merging(VisionTransformer(img_size=28, patch_size=14, embed_dim=16, depth=1, num_heads=2,
                                             num_classes=0, global_pool="avg"), 2)
