"""`dogsearch train WHAT`: the embedder's head (CPU), the ViT through LoRA (a GPU's work), the ViT fused with the
ImageNet CNN (CPU), the pose model, the dog detector's head. Each recipe's flags come from its config
(dogsearch/training/*/cli.py)."""
from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    from dogsearch.eval.calibrate import add_arguments as add_calibration_arguments
    from dogsearch.training.detector.cli import add_arguments as add_detector_arguments
    from dogsearch.training.detector.cli import add_rescore_arguments, add_second_look_arguments
    from dogsearch.training.embedder.cli import add_arguments, add_finetune_arguments
    from dogsearch.training.fusion.cli import add_arguments as add_fusion_arguments
    from dogsearch.training.pose.cli import add_arguments as add_pose_arguments

    train = sub.add_parser("train", help="train models (see dogsearch/training/)")
    kinds = train.add_subparsers(dest="what", required=True)
    embedder = kinds.add_parser("embedder", help="train a projection head on a frozen backbone")
    embedder.set_defaults(func=run_embedder)
    add_arguments(embedder)
    vit = kinds.add_parser("vit", help="fine-tune the ViT end to end through LoRA adapters (a GPU's work)")
    vit.set_defaults(func=run_vit)
    add_finetune_arguments(vit)
    fusion = kinds.add_parser("fusion", help="fuse the ViT with the ImageNet CNN's features and breed "
                                             "probabilities, weights chosen on validation splits")
    fusion.set_defaults(func=run_fusion)
    add_fusion_arguments(fusion)
    pose = kinds.add_parser("pose", help="train the default pose model (models/pose-lite0-fpn)")
    pose.set_defaults(func=run_pose)
    add_pose_arguments(pose)
    calibration = kinds.add_parser("calibration", help="the embedder's score -> same-dog probability map, fit on "
                                                       "validation dogs, measured on held-out dogs")
    calibration.set_defaults(func=run_calibration)
    add_calibration_arguments(calibration)
    detector = kinds.add_parser("detector", help="train the dog detector's head (models/detector-lite0-centernet)")
    detector.set_defaults(func=run_detector)
    add_detector_arguments(detector)
    rescore = kinds.add_parser("detector-rescore", help="fit the detector's re-scoring of its candidate boxes (a "
                                                        "logistic regression in the delta's config.json)")
    rescore.set_defaults(func=run_detector_rescore)
    add_rescore_arguments(rescore)
    look = kinds.add_parser("detector-second-look", help="choose the point of the detector's second look at photos "
                                                         "it finds no dog in but the classifier calls a dog")
    look.set_defaults(func=run_detector_second_look)
    add_second_look_arguments(look)


def run_embedder(args: argparse.Namespace) -> int:
    from dogsearch.core.logs import configure_logging
    from dogsearch.training.embedder.cli import run

    configure_logging("WARNING")
    return run(args)


def run_vit(args: argparse.Namespace) -> int:
    from dogsearch.core.logs import configure_logging
    from dogsearch.training.embedder.cli import run_finetune

    configure_logging("WARNING")
    return run_finetune(args)


def run_fusion(args: argparse.Namespace) -> int:
    from dogsearch.core.logs import configure_logging
    from dogsearch.training.fusion.cli import run

    configure_logging("WARNING")
    return run(args)


def run_calibration(args: argparse.Namespace) -> int:
    from dogsearch.core.logs import configure_logging
    from dogsearch.eval.calibrate import run

    configure_logging("WARNING")
    return run(args)


def run_pose(args: argparse.Namespace) -> int:
    from dogsearch.core.logs import configure_logging
    from dogsearch.training.pose.cli import run

    configure_logging("WARNING")
    return run(args)


def run_detector(args: argparse.Namespace) -> int:
    from dogsearch.core.logs import configure_logging
    from dogsearch.training.detector.cli import run

    configure_logging("WARNING")
    return run(args)


def run_detector_second_look(args: argparse.Namespace) -> int:
    from dogsearch.core.logs import configure_logging
    from dogsearch.training.detector.cli import run_second_look

    configure_logging("WARNING")
    return run_second_look(args)


def run_detector_rescore(args: argparse.Namespace) -> int:
    from dogsearch.core.logs import configure_logging
    from dogsearch.training.detector.cli import run_rescore

    configure_logging("WARNING")
    return run_rescore(args)
