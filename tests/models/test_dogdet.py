"""The trained dog detector, built by the registry from the delta shipped in models/detector-lite0-centernet."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dogsearch.core.boxes import share
from dogsearch.models import dogdet as D
from dogsearch.models import registry as R
from dogsearch.models.detect import DetectorError
from dogsearch.models.dogclass import Classification

FIXTURES = Path(__file__).parents[1] / "fixtures"
DOGS = sorted((FIXTURES / "dogs").rglob("*.jpg"))


@pytest.fixture(scope="module")
def detector() -> D.CenterNetDetector:
    return R.create_detector("lite0-centernet", threads=2, max_dogs=5, input_size=168)  # input_size: saliency's


def _open(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


def test_the_registry_builds_it_from_the_shipped_delta(detector):
    assert "lite0-centernet" in R.list_detectors() and "lite0-centernet-raw" in R.list_detectors()
    assert detector.name.startswith(f"{D.DETECTOR_ID}@") and detector.verify
    assert 0 < detector.min_score < 1 and detector.input_size == detector.config["input_size"]
    size = (D.DEFAULT_WEIGHTS_DIR / "head.safetensors").stat().st_size
    assert size <= 5 * 1024 * 1024


@pytest.mark.parametrize("path", DOGS, ids=[p.stem for p in DOGS])
def test_a_dog_photo_gets_a_box_on_the_dog(detector, path):
    image = _open(path)
    found = detector.detect(image)
    assert found, "no dog found"
    best = found[0]
    assert best.score >= detector.min_score
    # the verifier's classification of the crop comes along: a crop the classifier calls a dog
    assert best.classification is not None and best.classification.dog >= 0.5
    x0, y0, x1, y1 = best.box
    assert 0 <= x0 < x1 <= image.width and 0 <= y0 < y1 <= image.height
    assert (x1 - x0) * (y1 - y0) >= 0.1 * image.width * image.height  # these dogs fill much of the photo


def test_a_photo_without_a_dog_gets_no_box(detector):
    plain = Image.new("RGB", (320, 240), (120, 160, 200))
    ramp = Image.fromarray(np.tile(np.linspace(0, 255, 300, dtype=np.uint8)[None, :, None], (200, 1, 3)))
    assert detector.detect(plain) == [] and detector.detect(ramp) == []


def test_a_batch_of_photos_gets_each_photo_s_own_boxes_with_one_verifier_call(detector, monkeypatch):
    """The embedder detects a batch in one forward of the detector and one of the verifier (a GPU runs a batch in
    about the time of one photo): each photo's dogs are those it gets alone, a photo without a dog among them."""
    photos = [_open(p) for p in DOGS[:3]] + [Image.new("RGB", (320, 240), (120, 160, 200))]
    alone = [detector.detect(photo) for photo in photos]
    _, classifier = detector._parts()
    calls = []
    classify = classifier.classify
    monkeypatch.setattr(classifier, "classify", lambda crops: calls.append(len(crops)) or classify(crops))
    together = detector.detect_many(photos)
    # every photo's candidates in one batch; then the photos without a box, whole, in one more (the second look)
    assert len(calls) == 2 and calls[0] >= 3 and calls[1] == 1
    assert [len(found) for found in together] == [len(found) for found in alone] and together[-1] == []
    for batched, single in zip(together, alone, strict=True):
        for b, s in zip(batched, single, strict=True):
            np.testing.assert_allclose(b.box, s.box, atol=0.05)  # px: a batch's convolutions round alike, not bitwise
            assert b.score == pytest.approx(s.score, abs=1e-3)
    assert detector.detect_many([]) == []


def test_photos_travel_as_bytes_and_are_padded_as_a_float_canvas_would_be():
    """`fit` keeps a photo uint8 until `pad` builds the batch where the network runs: the same bits as the float
    canvas (grey 0.5, pixels / 255) it replaced, so the same boxes at the shipped operating points."""
    photo = _open(DOGS[0])
    small, scale = D.fit(photo, 256)
    assert str(small.dtype) == "torch.uint8"
    assert max(small.shape[1:]) == 256 and scale == 256 / max(photo.size)
    canvas = np.full((256, 256, 3), 0.5, dtype=np.float32)
    h, w = small.shape[1:]
    canvas[:h, :w] = np.asarray(photo.resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
    np.testing.assert_array_equal(D.pad([small, small], 256)[1].numpy(), canvas.transpose(2, 0, 1))
    np.testing.assert_array_equal(D.letterbox(photo, 256)[0].numpy(), canvas.transpose(2, 0, 1))


def test_the_whole_network_moves_with_the_module():
    """Everything the trunk computes with is the module's, so `.to(a GPU)` moves it all: shown with a dtype, which
    moves the same way on any machine (a tensor left behind in float32 would meet bf16 weights and fail)."""
    import torch

    net = D.DetectorNet(D.Trunk(), D.CenterHead(width=8)).to(torch.bfloat16)
    out = net(torch.rand(1, 3, 64, 64, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16 and out.shape[1] == 5
    assert "mean" not in net.state_dict() and "trunk.mean" not in net.state_dict()  # not part of the delta


def test_the_unverified_detector_has_its_own_operating_point():
    raw = R.create_detector("lite0-centernet-raw")
    assert not raw.verify and raw.min_score == raw.config["operating_point"]["raw"]
    assert raw.name.startswith(f"{D.DETECTOR_ID}-raw@")
    found = raw.detect(_open(DOGS[0]))
    assert found and all(d.score >= raw.min_score and d.classification is None for d in found)


def test_missing_or_corrupt_weights_are_clear_errors(tmp_path):
    with pytest.raises(DetectorError, match="config.json is missing"):
        D.CenterNetDetector(tmp_path)
    shutil.copy(D.DEFAULT_WEIGHTS_DIR / "config.json", tmp_path / "config.json")
    with pytest.raises(DetectorError, match=r"head\.safetensors is missing"):
        D.CenterNetDetector(tmp_path)
    (tmp_path / "head.safetensors").write_bytes(b"not the weights")
    with pytest.raises(DetectorError, match="checksum mismatch"):
        D.CenterNetDetector(tmp_path)


def test_decode_finds_the_peak_and_its_box():
    heat = np.full((1, 16, 16), -8.0, dtype=np.float32)
    heat[0, 4, 6] = 4.0
    size = np.zeros((2, 16, 16), dtype=np.float32)
    size[:, 4, 6] = np.log(0.25)
    offset = np.full((2, 16, 16), 0.5, dtype=np.float32)
    import torch

    [(box, score)] = D.decode(torch.from_numpy(heat), torch.from_numpy(size), torch.from_numpy(offset),
                              input_size=256)
    assert box == pytest.approx((72.0, 40.0, 136.0, 104.0)) and score > 0.98


def test_a_quality_head_ranks_the_dogs_whole_box_above_its_heads():
    import torch

    # two peaks: the dog's head (heat 0.9, a small box) and its whole body (heat 0.6, a large box)
    heat = torch.full((1, 16, 16), -8.0)
    heat[0, 4, 6], heat[0, 8, 8] = np.log(0.9 / 0.1), np.log(0.6 / 0.4)
    size = torch.full((2, 16, 16), float(np.log(0.1)))
    size[:, 8, 8] = float(np.log(0.5))
    offset = torch.full((2, 16, 16), 0.5)
    quality = torch.full((1, 16, 16), -8.0)  # the predicted IoU: the head's box 0.2, the body's 0.9
    quality[0, 4, 6], quality[0, 8, 8] = np.log(0.2 / 0.8), np.log(0.9 / 0.1)
    heat_only = D.decode(heat, size, offset, input_size=256)
    assert [round(s, 3) for _, s in heat_only] == [0.9, 0.6]
    weighed = D.decode(heat, size, offset, input_size=256, quality=quality, quality_weight=0.5)
    assert weighed[0][0] == (72.0, 72.0, 200.0, 200.0) and weighed[1][0] == pytest.approx((91.2, 59.2, 116.8, 84.8))
    assert [s for _, s in weighed] == pytest.approx([(0.6 * 0.9) ** 0.5, (0.9 * 0.2) ** 0.5], rel=1e-4)
    # weight 0 is the heat alone, whatever the quality says
    assert D.decode(heat, size, offset, input_size=256, quality=quality) == heat_only


def test_the_verified_score_weighs_the_head_and_the_crop():
    assert D.score_of(0.25, 0.81) == pytest.approx(0.45)  # 0.5: the geometric mean, as shipped
    assert D.score_of(0.25, 0.81, 0.25) == pytest.approx(0.25 ** 0.75 * 0.81 ** 0.25)
    assert D.score_of(0.25, 0.81, 0.0) == pytest.approx(0.25)


def test_box_map_decodes_every_cell():
    import torch

    size = torch.zeros(2, 2, 2)
    size[0] = float(np.log(0.5))  # half the input wide, the whole input high
    offset = torch.full((2, 2, 2), 0.5)
    boxes = D.box_map(size, offset, input_size=32)
    assert boxes.shape == (4, 2, 2)
    assert boxes[:, 1, 0].tolist() == pytest.approx([0.0, 8.0, 16.0, 40.0])  # centre (8, 24), 16 x 32


def test_a_quality_delta_loads_its_score_and_an_old_one_keeps_its_defaults(tmp_path):
    import json

    from dogsearch.training.detector.train import write

    config, _ = D.load_weights()
    shipped = D.CenterNetDetector(verify=True)  # trained with the quality output (docs/detection.md)
    assert shipped.head.quality is not None
    assert (shipped.quality_weight, shipped.p_weight) == (config["score"]["quality"], config["score"]["p"])
    # a delta from before the quality output: no `quality`, no `score` -> the heat, and sqrt(heat x p)
    heat_only = {k: v for k, v in config.items() if k not in ("quality", "score", "groups", "second_look")} | {
        "width": 8}
    write(tmp_path / "old", D.CenterHead(width=8), heat_only)
    old = D.CenterNetDetector(tmp_path / "old", verify=True)
    assert old.quality_weight == 0.0 and old.p_weight == 0.5 and old.head.quality is None
    config = {**heat_only, "quality": True, "score": {"quality": 0.5, "p": 0.25}}
    write(tmp_path, D.CenterHead(width=8, quality=True), config)
    new = D.CenterNetDetector(tmp_path, verify=True)
    assert new.head.quality is not None and (new.quality_weight, new.p_weight) == (0.5, 0.25)
    assert new.name != old.name and json.loads((tmp_path / "config.json").read_text())["score"]["p"] == 0.25
    # with p weighed 0.25, a box whose head score is under min_score^(1/0.75) cannot reach min_score: not verified
    new._forward, new._classifier = object(), _CropClassifier({})
    faint = ((10.0, 10.0, 110.0, 90.0), 0.99 * new.min_score ** (1 / 0.75))
    new.candidates_many = lambda images: [[faint] for _ in images]
    assert new.detect(Image.new("RGB", (200, 100))) == []  # _CropClassifier({}) would fail on any crop


def test_merged_heads_answer_the_mean_of_their_outputs_and_refuse_unlike_heads():
    import torch

    torch.manual_seed(0)
    heads = []
    for _ in range(3):
        head = D.CenterHead(width=8, quality=True)
        for p in head.parameters():
            p.data.normal_(0, 0.3)
        head.body[2].running_mean.normal_()
        head.body[2].running_var.uniform_(0.5, 2.0)
        heads.append(head.eval())
    merged = D.merge_heads(heads)
    assert merged.body[1].groups == 3 and merged.heat.in_channels == 24
    f16, f32 = torch.randn(2, D.F16_CHANNELS, 4, 4), torch.randn(2, D.F32_CHANNELS, 2, 2)
    with torch.no_grad():
        mean = [torch.stack(o).mean(0) for o in zip(*(h(f16, f32) for h in heads), strict=True)]
        for got, want in zip(merged(f16, f32), mean, strict=True):
            assert torch.allclose(got, want, atol=1e-5)
    with pytest.raises(ValueError, match="quality"):
        D.merge_heads([heads[0], D.CenterHead(width=8)])
    with pytest.raises(ValueError, match="single heads"):
        D.merge_heads([merged, merged])


def test_nms_keeps_the_best_of_overlapping_boxes():
    kept = D.nms([((0, 0, 10, 10), 0.5), ((1, 0, 11, 10), 0.9), ((20, 20, 30, 30), 0.3)])
    assert kept == [((1, 0, 11, 10), 0.9), ((20, 20, 30, 30), 0.3)]


def test_a_box_inside_a_better_one_is_one_dog_twice():
    body, other = ((0.0, 0.0, 100.0, 80.0), 0.9), ((120.0, 0.0, 200.0, 80.0), 0.7)
    head = ((60.0, 0.0, 100.0, 40.0), 0.8)  # IoU 0.2 with the body: NMS keeps it
    assert D.nms([body, head, other]) == [body, head, other]
    assert D.suppress_parts([head, other, body], 0.6) == [body, other]
    assert D.suppress_parts([head, other, body], None) == [body, head, other]
    # only a better box drops one: a head scored above its body keeps both (the score decides, not the size)
    assert D.suppress_parts([((60.0, 0.0, 100.0, 40.0), 0.95), body], 0.6) == [((60.0, 0.0, 100.0, 40.0), 0.95),
                                                                                body]
    half_in = ((50.0, 40.0, 150.0, 120.0), 0.6)  # a quarter of it inside the body: another dog
    assert D.suppress_parts([body, half_in], 0.6) == [body, half_in]


class _CropClassifier:
    """Dog probability by the crop's width: the tests' boxes differ in width, so each box has its own answer."""

    def __init__(self, dog_by_width: dict[int, float]) -> None:
        self.dog_by_width = dog_by_width

    def classify(self, images):
        return [Classification(self.dog_by_width[im.width], (), ()) for im in images]


# a re-scoring fitted on the calibration photos of a heat-only head (docs/detection.md): pinned, so that the tests
# below hold whatever the shipped delta's own fit is
RESCORE = {"candidates": 5, "features": ["heat", "p", "top"], "weights": [0.5853, 0.4987, 0.2158], "bias": -1.2406}


def _rescoring(candidates, dog_by_width) -> D.CenterNetDetector:
    """The re-scoring (``RESCORE``) on made-up candidates (box, heat) and crop answers, without the head."""
    config, _ = D.load_weights()
    config = {**{k: v for k, v in config.items() if k not in ("quality", "score")}, "rescore": RESCORE,
              "operating_point": {**config["operating_point"], "verified": 0.5303, "rescored": 0.4259}}
    detector = D.CenterNetDetector(head=D.CenterHead(width=8), config=config, rescore=True,
                                   classifier=_CropClassifier(dog_by_width))
    detector._forward = object()  # not used: the candidates are given
    detector.candidates_many = lambda images: [candidates for _ in images]
    return detector


def test_a_dog_the_head_scores_low_is_kept_when_its_crop_is_a_dog():
    # the photo's likeliest candidate by heat, faint (0.2), and its crop surely a dog; a faint background box
    body, background = ((10.0, 10.0, 110.0, 90.0), 0.2), ((150.0, 10.0, 190.0, 50.0), 0.1)
    # crops with VERIFY_MARGIN 0.1: the body's is 120 px wide, the background's 48 px
    detector = _rescoring([body, background], {120: 0.99, 48: 0.05})
    assert detector.rescore and detector.min_score == detector.config["operating_point"]["rescored"]
    assert (0.2 * 0.99) ** 0.5 < detector.config["operating_point"]["verified"]  # sqrt(heat x p) missed it
    [found] = detector.detect(Image.new("RGB", (200, 100)))
    assert found.box == body[0] and found.score >= detector.min_score and found.classification.dog == 0.99


def test_a_head_box_inside_the_dogs_box_is_dropped_and_a_crop_that_is_no_dog_is_not_boxed():
    body, head = ((10.0, 10.0, 110.0, 90.0), 0.5), ((60.0, 10.0, 100.0, 40.0), 0.4)  # IoU 0.15: NMS keeps both
    thing = ((140.0, 10.0, 190.0, 50.0), 0.45)  # the head peaks there too
    # crops with VERIFY_MARGIN 0.1: body 120 px wide, head 48, thing 60
    detector = _rescoring([body, thing, head], {120: 0.99, 48: 0.99, 60: 0.99})
    assert D.rescore([0.5, 0.4], [0.99, 0.99], detector.rescore)[1] >= detector.min_score  # the head scores a dog
    found = detector.detect(Image.new("RGB", (200, 100)))
    assert [d.box for d in found] == [body[0], thing[0]]  # but it lies inside the better body box
    detector._classifier = _CropClassifier({120: 0.99, 48: 0.99, 60: 0.02})  # the thing's crop is no dog
    assert [d.box for d in detector.detect(Image.new("RGB", (200, 100)))] == [body[0]]


def test_rescore_grows_with_heat_dog_probability_and_being_the_top_candidate():
    params = {"features": ["heat", "p", "top"], "weights": [1.0, 1.0, 1.0], "bias": 0.0}
    base = D.rescore([0.5, 0.4], [0.9, 0.9], params)[1]
    assert D.rescore([0.5, 0.45], [0.9, 0.9], params)[1] > base < D.rescore([0.5, 0.4], [0.9, 0.99], params)[1]
    first, second = D.rescore([0.5, 0.4], [0.9, 0.9], params)
    assert first == pytest.approx(1 / (1 + np.exp(-(0.0 + np.log(9.0) + 1.0))), rel=1e-3)  # logit(0.5) = 0, top
    assert second == pytest.approx(1 / (1 + np.exp(-(np.log(0.4 / 0.6) + np.log(9.0)))), rel=1e-3)
    assert D.rescore([], [], params).size == 0


def test_the_fit_sees_what_the_rescored_detector_sees():
    from dogsearch.training.detector import data as T
    from dogsearch.training.detector import rescore as RS

    detector = R.create_detector("lite0-centernet-rescored")
    image = _open(DOGS[0])
    [record] = RS.dump(detector, [T.Sample(image, [(0.0, 0.0, 10.0, 10.0)], "x.jpg")])
    assert record["truth"] == [[0.0, 0.0, 10.0, 10.0]] and 0 < len(record["candidates"]) <= RS.DUMP_CANDIDATES
    first = record["candidates"][: detector.rescore["candidates"]]
    scores = D.rescore([c["heat"] for c in first], [c["p"] for c in first], detector.rescore)
    expected = D.suppress_parts([(tuple(c["box"]), float(s)) for c, s in zip(first, scores, strict=True)
                                 if s >= detector.min_score], detector.inside)
    found = detector.detect(image)
    assert found and [d.box for d in found] == [pytest.approx(b, abs=0.01) for b, _ in expected]
    assert [d.score for d in found] == [pytest.approx(s, abs=1e-3) for _, s in expected]


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_export_runtimes_give_torchs_boxes_scores_and_breeds(detector, tmp_path, runtime):
    ort = R.create_detector("lite0-centernet", threads=1, runtime=runtime, cache_dir=tmp_path)
    assert ort.name == detector.name  # the same boxes: the same detector
    for path in DOGS:
        image = _open(path)
        np.testing.assert_allclose(np.array([c[0] for c in ort.candidates(image)]),
                                   np.array([c[0] for c in detector.candidates(image)]), atol=0.05)  # px
        expected, got = detector.detect(image), ort.detect(image)
        assert len(got) == len(expected)
        np.testing.assert_allclose([d.box for d in got], [d.box for d in expected], atol=0.05)
        np.testing.assert_allclose([d.score for d in got], [d.score for d in expected], atol=1e-3)
        assert [d.classification.breeds[0].name for d in got] == [d.classification.breeds[0].name for d in expected]
    # the trunk and head, and the verifier: one export each, kept in the cache dir
    assert sorted(p.name.split(".")[0] for p in tmp_path.glob("*.onnx")) == [
        f"{D.DETECTOR_ID}-{ort.input_size}px", "efficientnet_lite0-imagenet"]


def test_openvino_bf16_runs_the_detector_and_its_verifier_in_bf16(detector, tmp_path):
    from dogsearch.inference import runtimes as RT

    if not RT.openvino_bf16():  # this CPU lacks bf16: a clear error, not a silent fp32
        with pytest.raises(ValueError, match="bf16 instructions"):
            R.create_detector("lite0-centernet", runtime="openvino", precision="bf16", cache_dir=tmp_path)
        return
    half = R.create_detector("lite0-centernet", threads=1, runtime="openvino", precision="bf16", cache_dir=tmp_path)
    forward, classifier = half._parts()
    assert forward.compiled.get_property("INFERENCE_PRECISION_HINT").to_string() == "bf16"
    assert classifier._load()[0].compiled.get_property("INFERENCE_PRECISION_HINT").to_string() == "bf16"
    image = _open(DOGS[0])
    expected, got = detector.detect(image), half.detect(image)
    assert len(got) == len(expected)  # close boxes, not the same: bf16 stays a setting (docs/detection.md)
    np.testing.assert_allclose([d.box for d in got], [d.box for d in expected], atol=4.0)


def test_a_precision_the_runtime_cannot_run_is_refused(tmp_path):
    with pytest.raises(ValueError, match="'fp32', 'int8' or 'int8-mixed'"):
        R.create_detector("lite0-centernet", runtime="onnxruntime", precision="bf16", cache_dir=tmp_path)


def test_the_flip_test_averages_the_mirror_images_maps_and_keeps_the_photos_offsets():
    import torch

    out, mirrored = torch.randn(6, 16, 16), torch.randn(6, 16, 16)
    merged = D.flip_merge(out, mirrored)
    back = mirrored.flip(-1)
    for channels in (slice(0, 3), slice(5, 6)):  # heat, log sizes, quality
        torch.testing.assert_close(merged[channels], (out[channels] + back[channels]) / 2)
    torch.testing.assert_close(merged[3:5], out[3:5])
    # a photo whose maps are mirror-symmetric is its own mirror image: nothing changes but the offsets' source
    symmetric = (out + out.flip(-1)) / 2
    torch.testing.assert_close(D.flip_merge(symmetric, symmetric.flip(-1)), symmetric)


def test_a_flip_delta_detects_with_both_images_under_a_name_of_its_own():
    shipped = D.CenterNetDetector()
    flip = D.CenterNetDetector(config={**shipped.config, "flip": True}, head=shipped.head)
    assert flip.flip and not shipped.flip and flip.name != shipped.name
    image = _open(DOGS[0])
    seen = []
    forward, _ = flip._parts()
    flip._forward = lambda x: seen.append(x.shape[0]) or forward(x)
    found = flip.detect(image)
    assert seen == [2]  # the photo and its mirror image in one batch
    assert found and found[0].box == pytest.approx(shipped.detect(image)[0].box, abs=0.1 * image.width)


def test_the_vit_trunk_lays_its_patch_tokens_on_the_head_s_grid():
    """`train detector --trunk vit_small_dinov2`: DINOv2's patch tokens, one 14-px patch a 16-px cell, so the head,
    its targets and its boxes are the CNN trunk's. A change in one corner of the photo changes the tokens of that
    corner's cell most (a transposed or shifted grid would put it elsewhere); another input size is refused."""
    import torch

    trunk = D.ViTTrunk()
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    changed = x.clone()
    changed[:, :, :16, 240:] = 1 - changed[:, :, :16, 240:]  # the top-right cell: row 0, column 15
    with torch.inference_mode():
        (mid, last), (mid2, _) = trunk(x), trunk(changed)
        assert mid.shape == last.shape == (1, 384, 16, 16)
        moved = (mid2 - mid).norm(dim=1)[0]
        assert divmod(int(moved.argmax()), 16) == (0, 15)
        with pytest.raises(DetectorError, match="256-px inputs"):
            trunk(torch.rand(1, 3, 320, 320))


@pytest.mark.parametrize("backbone", ["vit_small_dinov2", "efficientnet_lite0+vit_small_dinov2"])
def test_a_delta_names_its_trunk_and_is_built_on_it(tmp_path, backbone):
    from dogsearch.training.detector.train import write

    trunk = D.TRUNKS[backbone]
    head = D.CenterHead(width=8, quality=True, channels=trunk.channels)
    config = {"name": "detector-test-trunk", "input_size": 256, "width": 8, "quality": True,
              "backbone": backbone, "suppress_inside": 0.6,
              "operating_point": {"raw": 0.5, "verified": 0.5, "candidate": 0.05}}
    write(tmp_path, head, config)
    detector = D.CenterNetDetector(tmp_path, verify=False)
    forward, _ = detector._parts()
    assert type(forward.module.trunk) is trunk
    assert isinstance(detector.candidates(_open(DOGS[0])), list)
    config["backbone"] = "resnet"
    (tmp_path / "config.json").write_text(__import__("json").dumps(config))
    with pytest.raises(DetectorError, match="unknown detector trunk 'resnet'"):
        D.CenterNetDetector(tmp_path, verify=False)
    # the shipped delta names no trunk: the CNN's, as before trunks had names
    assert "backbone" not in D.load_weights()[0] and D.CenterNetDetector().head.lat16.in_channels == D.F16_CHANNELS


def test_a_head_whose_quality_is_learnt_again_keeps_its_trunk(tmp_path):
    """`train detector --quality-of DIR` starts from a trained delta's head: built for that delta's trunk (a ViT
    head has 384-channel laterals), and refused when the features it would be fitted on are another trunk's."""
    import torch

    from dogsearch.training.detector.train import _base_head, write

    head = D.CenterHead(width=8, quality=False, channels=D.ViTTrunk.channels)
    write(tmp_path, head, {"name": "detector-test-vit", "input_size": 256, "width": 8, "backbone": "vit_small_dinov2",
                           "operating_point": {"raw": 0.5, "verified": 0.5, "candidate": 0.05}})
    base = _base_head(tmp_path, 256, 8, "vit_small_dinov2")
    assert base.lat16.in_channels == 384 and torch.equal(base.lat16.weight, head.lat16.weight)
    with pytest.raises(ValueError, match="trunk vit_small_dinov2"):
        _base_head(tmp_path, 256, 8)


def _looking(candidates, dog_by_width, *, look=None, look_again=True) -> D.CenterNetDetector:
    """The verified detector (sqrt(head x p), the shipped operating point) on made-up candidates, with the second
    look ``look`` (None: the delta takes none)."""
    config, _ = D.load_weights()
    config = {k: v for k, v in config.items() if k not in ("quality", "score", "rescore", "second_look")}
    if look:
        config["second_look"] = look
    detector = D.CenterNetDetector(head=D.CenterHead(width=8), config=config, look_again=look_again,
                                   classifier=_CropClassifier(dog_by_width))
    detector._forward = object()  # not used: the candidates are given
    detector.candidates_many = lambda images: [list(candidates) for _ in images]
    return detector


LOOK = {"photo_dog": 0.5, "score": 0.5}
# crops with VERIFY_MARGIN 0.1: the body's is 120 px wide, the background's 48; the whole photo is 200
BODY, BACKGROUND = ((10.0, 10.0, 110.0, 90.0), 0.36), ((150.0, 10.0, 190.0, 50.0), 0.3)


def test_a_photo_that_is_a_dog_as_a_whole_gets_its_first_candidate_on_a_second_look():
    photo = Image.new("RGB", (200, 100))
    detector = _looking([BODY, BACKGROUND], {120: 0.9, 48: 0.9, 200: 0.8}, look=LOOK)
    assert LOOK["score"] <= (0.36 * 0.9) ** 0.5 < detector.min_score  # the first pass misses it
    assert _looking([BODY, BACKGROUND], {120: 0.9, 48: 0.9, 200: 0.8}).detect(photo) == []  # without the look
    [found] = detector.detect(photo)
    assert found.box == BODY[0] and found.score == round((0.36 * 0.9) ** 0.5, 4) and found.classification.dog == 0.9
    # the whole photo is no dog: no look, no box (a photo without a dog stays without one)
    assert _looking([BODY, BACKGROUND], {120: 0.9, 48: 0.9, 200: 0.3}, look=LOOK).detect(photo) == []
    # the first candidate's crop is barely a dog: under the look's point, not taken, and no other candidate is
    assert _looking([BODY, BACKGROUND], {120: 0.5, 48: 0.99, 200: 0.8}, look=LOOK).detect(photo) == []
    # a dog filling its photo is taken whole: the body covers 0.4 of the photo, over the look's max_share
    filling = _looking([BODY, BACKGROUND], {120: 0.9, 48: 0.9, 200: 0.8}, look=LOOK | {"max_share": 0.3})
    assert share(BODY[0], *photo.size) == 0.4 and filling.detect(photo) == []
    # a photo the first pass boxed is not looked at again: its whole photo is never classified
    sure = _looking([((10.0, 10.0, 110.0, 90.0), 0.9)], {120: 0.99}, look=LOOK)
    assert [d.box for d in sure.detect(photo)] == [BODY[0]]  # _CropClassifier would fail on the 200 px photo


def test_a_caller_that_classified_the_whole_photos_takes_the_second_look_itself():
    photo = Image.new("RGB", (200, 100))
    detector = _looking([BODY], {120: 0.9}, look=LOOK, look_again=False)  # 200 unknown: never classified here
    assert detector.detect(photo) == []
    dog, cat = Classification(0.8, (), ()), Classification(0.1, (), ())
    found, none = detector.second_look([photo, photo], [dog, cat])
    assert found.box == BODY[0] and none is None
    assert _looking([BODY], {120: 0.9}).second_look([photo], [dog]) == [None]  # a delta without a look
    # the look changes the boxes: it is in the detector's name
    assert detector.name != _looking([BODY], {120: 0.9}).name


def test_choosing_the_second_look_runs_the_head_once_a_photo():
    """`train detector-second-look` asks two things of each calibration photo (any box? its first candidate?): the
    head's candidates are computed once for both."""
    from dogsearch.training.detector.data import Sample
    from dogsearch.training.detector.second_look import looked_at

    photo = Image.new("RGB", (200, 100))
    detector = _looking([BODY, BACKGROUND], {120: 0.9, 48: 0.9, 200: 0.8})  # no look yet: the one being chosen
    given, runs = detector.candidates_many, []
    detector.candidates_many = lambda images: runs.append(len(images)) or given(images)
    [record] = looked_at(detector, [Sample(photo, [BODY[0]], "a.jpg")])
    assert runs == [1]
    assert record["first"] == [list(BODY[0]), round((0.36 * 0.9) ** 0.5, 4)] and record["photo_dog"] == 0.8
    assert detector.detect_many([photo], [[BODY]]) == [[]] and runs == [1]  # given candidates, the head is not run


def test_the_shipped_delta_takes_a_second_look_chosen_on_its_calibration_photos():
    config, _ = D.load_weights()
    look = config["second_look"]
    assert 0 < look["score"] < config["operating_point"]["verified"] and look["photo_dog"] == 0.5
    assert look["max_share"] == 0.3  # issue 18's small dog: a dog filling its photo is taken whole
    assert D.CenterNetDetector().look_again and not D.CenterNetDetector(look_again=False).look_again
    assert D.CenterNetDetector(rescore=True).look is None  # the re-scored detector answers by its own points


def test_a_close_up_filling_the_frame_stays_without_a_box_on_the_second_look():
    """The close-up fixture (a sleeping dingo) is what the web e2e test adds as a whole-photo dog: the detector boxes
    nothing there even on its second look, and the classifier calls the whole photo a dog."""
    photo = _open(FIXTURES / "close-up" / "ILSVRC2012_val_00041341.jpg")
    detector = D.CenterNetDetector(threads=2, look_again=False)
    _, classifier = detector._parts()
    [whole] = classifier.classify([photo])
    assert detector.detect(photo) == [] and whole.dog >= detector.look["photo_dog"]
    # its first candidate scores under the look's point, and covers about half the photo
    assert detector.second_look([photo], [whole]) == [None]
    assert D.CenterNetDetector(threads=2).detect(photo) == []  # the same when the detector looks again itself
