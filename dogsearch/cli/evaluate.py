"""`dogsearch eval KIND DIR`: retrieval quality of the bare embedder (breed, identity), of the whole service
(service), pose accuracy (pose) and dog detection (detect)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(sub) -> None:
    evaluate = sub.add_parser("eval", help="measure retrieval quality")
    kinds = evaluate.add_subparsers(dest="kind", required=True)
    service = kinds.add_parser(
        "service", help="top-1 breed accuracy through the HTTP API next to the bare model's, on one split")
    service.add_argument("dir", type=Path, help="DIR/<breed>/<photo>")
    service.add_argument("--gallery-per-breed", type=int, default=30,
                         help="the first N photos of each breed are indexed, the rest are queries")
    service.add_argument("--json", action="store_true")
    service.set_defaults(func=run_service)
    pose = kinds.add_parser("pose", help="pose keypoint accuracy (PCK@0.1) and speed on labelled photos")
    pose.add_argument("dir", type=Path, help="DIR/images/<id>.jpg and DIR/labels/<id>.txt (YOLO-pose, "
                                             "StanfordExtra's 24 joints)")
    pose.add_argument("--boxes", choices=["detected", "labelled"], default="detected",
                      help="detected (default): the whole service path; labelled: pose from the label boxes")
    pose.add_argument("--limit", type=int, help="only the first N photos")
    pose.add_argument("--json", action="store_true")
    pose.set_defaults(func=run_pose)
    detect = kinds.add_parser("detect", help="dog boxes: precision, recall, AP@0.5 on labelled photos and the "
                                             "false-positive rate on photos without a dog")
    detect.add_argument("dir", type=Path, help="DIR/labels/<id>.txt (YOLO-pose: one line a dog, with its box) and "
                                               "DIR/images/<id>.jpg")
    detect.add_argument("--images", type=Path, action="append", default=[], metavar="DIR",
                        help="more folders to find the labelled photos in, searched recursively (repeatable)")
    detect.add_argument("--negatives", type=Path, action="append", default=[], metavar="DIR",
                        help="a folder of photos without a dog, searched recursively (repeatable)")
    detect.add_argument("--detector", help="detector name (default: the registry's default)")
    detect.add_argument("--iou", type=float, default=0.5, help="IoU a box needs with a labelled dog to count")
    detect.add_argument("--limit", type=int, help="at most N photos of each folder, spread evenly over it")
    detect.add_argument("--split", choices=["all", "train", "held-out"], default="all",
                        help="only the photos of this split (a hash of the file name, eval/detect.split_of): "
                             "held-out is what a trained detector never saw")
    detect.add_argument("--threads", type=int, help="detector threads (default: the runtime's)")
    detect.add_argument("--json", action="store_true", help="print one JSON object")
    detect.set_defaults(func=run_detect)
    for kind, what in (("breed", "DIR/<breed>/<photo>"), ("identity", "DIR/<dog>/<photo>; dogs with >= 2 photos")):
        retrieval = kinds.add_parser(kind, help=f"leave-one-out {kind} retrieval of the bare embedder: "
                                                 "recall@1, recall@5, mAP, images/s")
        retrieval.add_argument("dir", type=Path, help=what)
        retrieval.add_argument("--model", help="embedder model name (default: the embedder setting)")
        retrieval.add_argument("--device", help="cpu, cuda, cuda:N (default: the embedder setting, "
                                                "else the GPU when there is one)")
        retrieval.add_argument("--split", choices=["all", "train", "val", "heldout"], default="all",
                               help="only photos of this split (dogsearch/eval/splits.py); identity evals use "
                                    "'heldout' for the DogFaceNet dogs kept out of training")
        retrieval.add_argument("--batch-size", type=int, default=32)
        retrieval.add_argument("--json", action="store_true", help="print one JSON object")
        retrieval.set_defaults(func=run_retrieval)


def run_service(args: argparse.Namespace) -> int:
    from dogsearch.core.logs import configure_logging
    from dogsearch.eval.service import evaluate_service

    configure_logging("WARNING")
    result = evaluate_service(args.dir, args.gallery_per_breed)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>12}: {value}")
    return 0


def run_retrieval(args: argparse.Namespace) -> int:
    from dogsearch.core.logs import configure_logging
    from dogsearch.eval.retrieval import evaluate_dir, load_model

    configure_logging("WARNING")
    if not args.dir.is_dir():
        print(f"dogsearch eval {args.kind}: {args.dir} is not a folder", file=sys.stderr)
        return 2
    model = load_model(args.model, args.device)
    try:
        result = evaluate_dir(model, args.dir, args.kind, split=args.split, batch_size=args.batch_size)
    except ValueError as exc:
        print(f"dogsearch eval {args.kind}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>10}: {value:.4f}" if isinstance(value, float) else f"{key:>10}: {value}")
    return 0


def run_pose(args: argparse.Namespace) -> int:
    from dogsearch.core.logs import configure_logging
    from dogsearch.eval.pose import evaluate_dir

    configure_logging("WARNING")
    result = evaluate_dir(args.dir, boxes=args.boxes, limit=args.limit)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for key in ("pck@0.1", "n_images", "n_dogs", "n_keypoints", "model", "detector", "boxes", "ms_per_image"):
        value = result[key]
        print(f"{key:>13}: {value:.4f}" if isinstance(value, float) else f"{key:>13}: {value}")
    print("per joint (PCK@0.1, labelled visible count):")
    for name, item in result["per_joint"].items():
        pck = "   n/a" if item["pck"] is None else f"{item['pck']:.3f}"
        print(f"  {name:>16}: {pck}  (n={item['n']})")
    return 0


def run_detect(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from dogsearch.core.logs import configure_logging
    from dogsearch.eval.detect import evaluate
    from dogsearch.models.registry import DEFAULT_DETECTOR, create_detector

    configure_logging("WARNING")
    detector = create_detector(args.detector or DEFAULT_DETECTOR, threads=args.threads)
    try:
        result = evaluate(detector, args.dir, negatives=args.negatives, image_dirs=args.images, iou=args.iou,
                          limit=args.limit, split=args.split,
                          progress=lambda items, what: tqdm(items, desc=f"eval detect {what}", unit="photo",
                                                            disable=args.json))
    except ValueError as exc:
        print(f"dogsearch eval detect: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
        return 0
    claim = (f"scored above {result['fallback_score']} (the whole-image fallback is no dog)"
             if result["min_score"] is None else f"scored at or above its operating point {result['min_score']}")
    print(f"detector {result['detector']} on {result['split']} photos; a dog box: IoU >= {result['iou']} with a "
          f"labelled dog, {claim}")
    lab = result["labelled"]
    print(f"{'labelled':<10} {'photos':>6} {'dogs':>5} {'boxes':>6} {'precision':>9} {'recall':>6} {'AP@0.5':>6} "
          f"{'none':>5} {'ms/photo':>8}  dir")
    print(f"{'':<10} {lab['n_images']:>6} {lab['n_dogs']:>5} {lab['n_detections']:>6} {_num(lab['precision']):>9} "
          f"{_num(lab['recall']):>6} {_num(lab['ap']):>6} {lab['no_dog_found']:>5} {_num(lab['ms_per_image'], 1):>8}  "
          f"{lab['dir']}")
    if result["negatives"]:
        print(f"{'negatives':<10} {'photos':>6} {'with dog box':>12} {'FP rate':>7} {'ms/photo':>8}  dir")
        for neg in result["negatives"]:
            print(f"{'':<10} {neg['n_images']:>6} {neg['images_with_dog_box']:>12} {_num(neg['fp_rate']):>7} "
                  f"{_num(neg['ms_per_image'], 1):>8}  {neg['dir']}")
        print(f"{'all':<10} {'':>6} {'':>12} {_num(result['fp_rate']):>7}")
    return 0


def _num(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)
