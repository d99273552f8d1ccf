"""`dogsearch train detector`: train the dog detector's head on the training split, write models/<id>/."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dogsearch.core.boxes import SMALL_SHARE

DEFAULT_DATA = Path("../shared/data")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dogs", type=Path, default=DEFAULT_DATA / "dogpose",
                        help="labelled dogs: DIR/labels/<id>.txt (YOLO, one line a dog) (default "
                             "../shared/data/dogpose)")
    parser.add_argument("--images", type=Path, action="append",
                        help="folders searched for the labelled photos (repeatable; default ../shared/data/imagewoof)")
    parser.add_argument("--negatives", type=Path, action="append",
                        help="folders of photos without a dog (repeatable; default ../shared/data/not-dogs and "
                             "../shared/data/oxford-pets/cats)")
    parser.add_argument("--out", type=Path, default=Path("models/detector-lite0-centernet"))
    parser.add_argument("--cache-dir", type=Path, help="cache the frozen trunk's features here")
    parser.add_argument("--input-size", type=int, default=256)
    parser.add_argument("--trunk", choices=("efficientnet_lite0", "vit_small_dinov2",
                                            "efficientnet_lite0+vit_small_dinov2"), default="efficientnet_lite0",
                        help="the frozen trunk the head reads (vit_small_dinov2: DINOv2's patch tokens, 4-5x the "
                             "CNN's time a photo)")
    parser.add_argument("--width", type=int, default=64, help="the head's channels")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, nargs="+", default=[0],
                        help="several: one head a seed, merged into one whose outputs are their mean (default 0)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--suppress-inside", type=float, default=None,
                        help="drop a box with this share of its area inside a better one (default 0.6; 0: never)")
    parser.add_argument("--quality", action="store_true",
                        help="the head also learns the IoU of the box it decodes at each cell; the calibration photos "
                             "choose how the score weighs it")
    parser.add_argument("--box-loss", choices=("l1", "giou"), default="l1",
                        help="l1 on the log box size (default) or GIoU of the decoded box")
    parser.add_argument("--quality-of", type=Path, metavar="DIR",
                        help="keep the head of this trained delta as it is and learn only a quality output on it "
                             "(its boxes unchanged; implies --quality)")
    parser.add_argument("--spread", type=int, default=0,
                        help="regress the box at the cells up to this many cells from its centre cell too (default 0)")
    parser.add_argument("--pseudo-photos", type=int, default=0, metavar="N",
                        help="add up to N training-split photos of --pseudo (dogs without boxes) boxed by --teacher "
                             "where it is sure of every box (default 0: none)")
    parser.add_argument("--pseudo", type=Path, action="append",
                        help="folders of dog photos without boxes (repeatable; default ../shared/data/imagewoof/train)")
    parser.add_argument("--teacher", type=Path, default=Path("models/detector-lite0-centernet"),
                        help="the trained delta that boxes the --pseudo photos (default the shipped one, read "
                             "before --out is written)")
    parser.add_argument("--pseudo-high", type=float, default=0.75,
                        help="a teacher's box at or above this verified score is a dog (default 0.75)")
    parser.add_argument("--pseudo-low", type=float, default=0.3,
                        help="a photo with a teacher's box scored between this and --pseudo-high is left out "
                             "(default 0.3)")
    parser.add_argument("--folds", type=int, default=0, metavar="K",
                        help="fit on every training-split photo and choose the operating points on their out-of-fold "
                             "scores (K heads, each fitted on the other folds) instead of on the calibration part "
                             "alone (0, the default)")
    parser.add_argument("--flip", choices=("off", "on", "choose"), default="off",
                        help="the flip test (the photo and its mirror image): off, on, or choose by the mistakes "
                             "where the operating points are chosen (default off)")
    parser.add_argument("--dump-out-of-fold", type=Path, metavar="FILE",
                        help="with --folds: write each photo's candidates as its fold's heads see them (the "
                             "re-scoring's dump format), to weigh the re-scoring out of fold")


def run(args: argparse.Namespace) -> int:
    from dogsearch.training.detector.train import SUPPRESS_INSIDE, train

    if args.input_size % 32:
        raise SystemExit(f"--input-size must be a multiple of 32, not {args.input_size}")
    if "vit" in args.trunk and args.input_size != 256:
        raise SystemExit("--trunk vit_small_dinov2 takes --input-size 256 (the ViT's 224 px, one patch a cell)")
    images = args.images or [DEFAULT_DATA / "imagewoof"]
    negatives = args.negatives or [DEFAULT_DATA / "not-dogs", DEFAULT_DATA / "oxford-pets" / "cats"]

    def log(message: str) -> None:
        print(message, file=sys.stderr)  # stdout: the result only

    inside = SUPPRESS_INSIDE if args.suppress_inside is None else args.suppress_inside
    if not 0 <= inside <= 1:
        raise SystemExit(f"--suppress-inside must be between 0 and 1, not {inside}")
    inside = inside or None
    if len(args.seed) > 1 and args.quality_of is not None:
        raise SystemExit("--quality-of learns the quality of one trained head: give one --seed")
    seed = args.seed if len(args.seed) > 1 else args.seed[0]
    if args.pseudo_photos < 0 or not 0 <= args.pseudo_low <= args.pseudo_high <= 1:
        raise SystemExit("--pseudo-photos must be 0 or more, and 0 <= --pseudo-low <= --pseudo-high <= 1")
    if args.folds and (args.folds < 2 or args.pseudo_photos or args.quality_of is not None):
        raise SystemExit("--folds must be 2 or more, without --pseudo-photos or --quality-of")
    if args.dump_out_of_fold and not args.folds:
        raise SystemExit("--dump-out-of-fold needs --folds")
    if args.pseudo_photos and not (args.teacher / "config.json").is_file():
        raise SystemExit(f"--teacher {args.teacher}: no config.json there (a trained detector delta)")
    config = train(args.dogs, images, negatives, args.out, input_size=args.input_size, width=args.width,
                   epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=seed,
                   threads=args.threads, cache_dir=args.cache_dir, suppress_inside=inside, quality=args.quality,
                   box_loss=args.box_loss, spread=args.spread, quality_of=args.quality_of,
                   pseudo_dirs=args.pseudo or [DEFAULT_DATA / "imagewoof" / "train"],
                   pseudo_photos=args.pseudo_photos, teacher=args.teacher, pseudo_high=args.pseudo_high,
                   pseudo_low=args.pseudo_low, folds=args.folds, flip=args.flip,
                   dump_out_of_fold=args.dump_out_of_fold, backbone=args.trunk, log=log)
    print(json.dumps({"out": str(args.out), "train_minutes": config["train_minutes"],
                      "operating_point": config["operating_point"], "suppress_inside": inside,
                      "score": config.get("score"), "flip": bool(config.get("flip")),
                      "calibration_mistakes": config["calibration_mistakes"],
                      "calibration_rates": config["calibration_rates"],
                      **{k: config[k] for k in ("folds", "flip_test_mistakes") if k in config}}, indent=2))
    return 0


def _add_calibration_photos(parser: argparse.ArgumentParser, what: str) -> None:
    """The photos and the delta of a choice made on the calibration photos (``what``: what config.json gets)."""
    parser.add_argument("--dogs", type=Path, default=DEFAULT_DATA / "dogpose", help="labelled dogs (as for detector)")
    parser.add_argument("--images", type=Path, action="append",
                        help="folders searched for the labelled photos (repeatable; default ../shared/data/imagewoof)")
    parser.add_argument("--negatives", type=Path, action="append",
                        help="folders of photos without a dog (repeatable; default ../shared/data/not-dogs and "
                             "../shared/data/oxford-pets/cats)")
    parser.add_argument("--weights", type=Path, default=Path("models/detector-lite0-centernet"),
                        help=f"the delta whose config.json gets {what} (its head makes the candidates)")


def _photo_dirs(args: argparse.Namespace) -> tuple[list[Path], list[Path]]:
    """(--images, --negatives) with their defaults."""
    return (args.images or [DEFAULT_DATA / "imagewoof"],
            args.negatives or [DEFAULT_DATA / "not-dogs", DEFAULT_DATA / "oxford-pets" / "cats"])


def add_rescore_arguments(parser: argparse.ArgumentParser) -> None:
    _add_calibration_photos(parser, "the re-scoring")
    parser.add_argument("--dump", type=Path, default=Path("/tmp/detector-rescore/calibrate.json"),
                        help="the calibration photos' candidates: read when it exists, else made (minutes) and kept")
    parser.add_argument("--cross-validate", action="store_true",
                        help="weigh the re-scoring against the verified score out of fold on --dump, a file written "
                             "by `train detector --folds K --dump-out-of-fold` (--weights: its delta, for the score "
                             "and suppression); prints, writes nothing")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")


def add_second_look_arguments(parser: argparse.ArgumentParser) -> None:
    _add_calibration_photos(parser, "the second look")
    parser.add_argument("--photo-dog", type=float, default=0.5,
                        help="the whole photo's dog probability from which a photo is looked at again (default 0.5, "
                             "the embedder's whole_photo_dog)")
    parser.add_argument("--max-share", type=float, default=SMALL_SHARE,
                        help="the look takes a box only under this share of its photo: a dog filling its photo is "
                             f"taken whole (default {SMALL_SHARE}, issue 18's small dog)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")


def run_second_look(args: argparse.Namespace) -> int:
    import torch

    from dogsearch.training.detector.second_look import run as fit

    for flag, value in (("--photo-dog", args.photo_dog), ("--max-share", args.max_share)):
        if not 0.0 < value <= 1.0:
            raise SystemExit(f"{flag} must be in (0, 1], not {value}")
    torch.set_num_threads(args.threads)
    result = fit(args.dogs, *_photo_dirs(args), args.weights, args.photo_dog, args.max_share,
                 log=lambda message: print(message, file=sys.stderr))
    print(json.dumps(result, indent=2))
    return 0


def run_rescore(args: argparse.Namespace) -> int:
    import torch

    from dogsearch.training.detector.rescore import cross_validate
    from dogsearch.training.detector.rescore import run as fit

    if args.cross_validate:
        records = json.loads(args.dump.read_text()) if args.dump.is_file() else []
        if not records or any("fold" not in r for r in records):
            raise SystemExit(f"--cross-validate: {args.dump} holds no out-of-fold records (write them with "
                             "`dogsearch train detector --folds K --dump-out-of-fold FILE`)")
        config = json.loads((args.weights / "config.json").read_text())
        print(json.dumps(cross_validate(records, inside=config.get("suppress_inside"),
                                        p_weight=float(config.get("score", {}).get("p", 0.5))), indent=2))
        return 0
    torch.set_num_threads(args.threads)
    result = fit(args.dogs, *_photo_dirs(args), args.weights, args.dump,
                 log=lambda message: print(message, file=sys.stderr))
    print(json.dumps(result, indent=2))
    return 0
