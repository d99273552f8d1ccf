from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dogsearch.models.dogclass import BREED_CLASSES, DOG_CLASSES, DogClassifier, breed_name, imagenet_names, summarise

FIXTURES = Path(__file__).parents[1] / "fixtures" / "dogs"


def test_names_cover_imagenet_and_the_dog_classes():
    names = imagenet_names()
    assert len(names) == 1000
    assert breed_name(162) == "beagle" and breed_name(273) == "dingo"
    assert names[DOG_CLASSES.stop] not in {breed_name(i) for i in BREED_CLASSES}
    assert len(BREED_CLASSES) == 119  # 118 domestic breeds and the dingo


def test_summarise_a_dog():
    probs = np.zeros(1000)
    probs[162], probs[161], probs[270], probs[0] = 0.6, 0.2, 0.1, 0.1  # beagle, basset, white wolf, tench
    c = summarise(probs)
    assert c.dog == pytest.approx(0.9)
    assert [b.name for b in c.breeds[:2]] == ["beagle", "basset"]
    assert c.breeds[0].p == pytest.approx(0.75)  # given a breed: 0.6 / 0.8
    assert c.labels[0].name == "beagle" and len(c.labels) == 3


def test_summarise_no_dog_says_what_it_seems_to_be():
    probs = np.full(1000, 0.1 / 999)
    probs[574] = 0.9  # golf ball
    c = summarise(probs)
    assert c.dog < 0.02
    assert c.labels[0].name == "golf ball"


def test_the_real_head_sees_a_beagle_and_no_dog_in_a_blank_photo():
    beagle_photo = Image.open(FIXTURES / "n02088364" / "ILSVRC2012_val_00005922.jpg")
    beagle, blank = DogClassifier().classify([beagle_photo, Image.new("RGB", (200, 200), "gray")])
    assert beagle.dog > 0.9 and "beagle" in [b.name for b in beagle.breeds]
    assert blank.dog < 0.5


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_export_runtimes_give_torchs_probabilities(tmp_path, runtime):
    paths = sorted((Path(__file__).parents[1] / "fixtures" / "dogs").rglob("*.jpg"))[:3]
    photos = [Image.open(p).convert("RGB") for p in paths]
    expected = DogClassifier().probabilities(photos)
    classifier = DogClassifier(runtime=runtime, threads=1, cache_dir=str(tmp_path))
    np.testing.assert_allclose(classifier.probabilities(photos), expected, atol=1e-5)
    assert classifier._load()[0].runtime == runtime
    with pytest.raises(ValueError, match="runs on the CPU"):
        DogClassifier(runtime=runtime, device="cuda")


def test_the_batch_is_normalised_on_the_device_with_timms_own_bits():
    """Only the resizing runs per photo; timm's ToTensor and Normalize run once on the batch, where the network
    runs: the same operations, so the same input and the same probabilities as timm's whole eval transform."""
    import timm.data
    import torch

    from dogsearch.models.efficientnet import LITE0_MODEL
    from dogsearch.models.registry import build_backbone

    photos = [Image.open(p).convert("RGB") for p in sorted(FIXTURES.rglob("*.jpg"))[:3]]
    classifier = DogClassifier()
    forward, _ = classifier._load()
    _, _, config = build_backbone(LITE0_MODEL, num_classes=1000)
    timm_batch = torch.stack([timm.data.create_transform(**config, is_training=False)(p) for p in photos])
    expected = torch.softmax(forward(timm_batch).float(), dim=1).numpy()
    np.testing.assert_array_equal(classifier.probabilities(photos), expected)
