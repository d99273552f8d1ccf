"""`dogsearch eval KIND DIR`: retrieval quality of the bare embedder (breed, identity), of the whole service
(service), pose accuracy (pose), dog detection (detect), the breed suggestions (breed-guess), the dog crop
against the whole photo (crops), the alerts of watches (watches) and the verdicts where one dog is stored twice
(stored-twice)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dogsearch.gallery.expansion import Expansion
from dogsearch.gallery.multiquery import RULES


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
    add_split(detect, ("all", "train", "held-out"), "only the photos of this split (a hash of the file name, "
                                                    "eval/detect.split_of): heldout is what a trained detector never "
                                                    "saw")
    detect.add_argument("--weights", type=Path, metavar="DIR",
                        help="a trained delta (`dogsearch train detector --out DIR`) in place of the detector's "
                             "shipped one")
    detect.add_argument("--threads", type=int, help="detector threads (default: the runtime's)")
    detect.add_argument("--runtime", choices=["torch", "onnxruntime", "openvino"], default="torch",
                        help="what runs the detector's networks (the embedder service's DOGSEARCH_EMBEDDER_RUNTIME)")
    detect.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="bf16: OpenVINO's bf16 inference (or torch autocast), on a CPU with bf16 instructions")
    detect.add_argument("--unlabelled-dogs", type=Path, metavar="FILE",
                        help="photo ids (one a line) showing dogs their labels lack: precision is reported once more "
                             "(labelled_only) without the boxes on none of the labelled dogs of those photos "
                             "(docs/detection-unlabelled-dogs.txt: dogpose's held-out photos, by inspection)")
    detect.add_argument("--json", action="store_true", help="print one JSON object")
    detect.set_defaults(func=run_detect)
    guess = kinds.add_parser("breed-guess", help="top-1 / top-3 accuracy of the breed suggestions (the ImageNet "
                                                 "head of efficientnet_lite0) on breed folders")
    guess.add_argument("dir", type=Path, help="DIR/<breed>/<photo>: a WordNet id (Imagewoof), an Oxford-IIIT Pet "
                                              "breed or an ImageNet breed name; other breeds are left out")
    guess.add_argument("--boxes", type=Path, metavar="LABELS",
                       help="YOLO label files <photo stem>.txt (e.g. dogpose/labels): also classify those photos' "
                            "dog crops, to compare with the whole photos")
    guess.add_argument("--device", default="cpu")
    guess.add_argument("--json", action="store_true", help="print one JSON object")
    guess.set_defaults(func=run_breed_guess)
    watches = kinds.add_parser("watches", help="right and wrong alerts of watches on held-out dogs, judged by the "
                                               "pair alone and by the lead over the next dog (the shipped calibration)")
    from dogsearch.eval.watches import add_arguments as watch_arguments

    watch_arguments(watches)
    watches.set_defaults(func=run_watches)
    twice = kinds.add_parser("stored-twice", help="first results where some dogs are stored twice (two reports of one "
                                                  "dog), judged against the next dog and with the results' own "
                                                  "cosines (the shipped calibration)")
    from dogsearch.eval.calibrate import add_arguments as calibration_arguments

    calibration_arguments(twice)  # the sets and vectors `dogsearch train calibration` fits and measures on
    twice.set_defaults(func=run_twice)
    added = kinds.add_parser("added-photos", help="the verdicts of photos added to a dog, right and wrong, on held-out "
                                                  "dogs at several priors (the shipped calibration)")
    from dogsearch.eval.added import add_arguments as added_arguments

    added_arguments(added)
    added.set_defaults(func=run_added)
    crops = kinds.add_parser("crops", help="breed retrieval with the whole photo embedded against the dog's crop "
                                           "(labelled box, detector's box at several margins), on small dogs")
    crops.add_argument("--small", type=Path, metavar="DIR",
                       help="labelled photos (DIR/labels/<id>.txt, YOLO-pose) whose dog covers little of the photo")
    crops.add_argument("--images", type=Path, action="append", default=[], metavar="DIR",
                       help="more folders to find --small's photos in, searched recursively (repeatable)")
    crops.add_argument("--max-share", type=float, default=0.3,
                       help="--small keeps the photos whose dog box covers less than this share of the photo")
    crops.add_argument("--composed", type=Path, metavar="DIR",
                       help="dog photos DIR/<breed>/<photo>, each pasted small into a --scenes photo")
    crops.add_argument("--scenes", type=Path, metavar="DIR", help="photos without a dog to compose into")
    crops.add_argument("--share", type=float, nargs=2, default=(0.1, 0.3), metavar=("LOW", "HIGH"),
                       help="area share of the scene a composed dog photo covers, drawn per photo")
    crops.add_argument("--scene-side", type=int, default=640, help="scenes are scaled to this longer side")
    crops.add_argument("--seed", type=int, default=0, help="seed of the composition's draws")
    crops.add_argument("--plain", type=Path, metavar="DIR", help="dog photos DIR/<breed>/<photo> as they are")
    crops.add_argument("--margins", default="0,0.1,0.2,0.3",
                       help="comma-separated crop margins, shares of the box's size on each side")
    crops.add_argument("--model", help="embedder model name (default: the embedder setting)")
    crops.add_argument("--device", help="cpu, cuda, cuda:N (default: the embedder setting)")
    crops.add_argument("--detector", help="detector name (default: the registry's default)")
    crops.add_argument("--threads", type=int, help="detector threads (default: the runtime's)")
    crops.add_argument("--second-look", action="store_true",
                       help="the detector's second look at a photo it finds no dog in (off, as the embedder's "
                            "DOGSEARCH_EMBEDDER_SECOND_LOOK is by default: the whole photo)")
    crops.add_argument("--limit", type=int, help="at most N photos of each set, spread evenly over it")
    crops.add_argument("--batch-size", type=int, default=32)
    crops.add_argument("--cache-dir", type=Path, metavar="DIR",
                       help="keep embeddings and detections here, by model, detector and crop (reruns reuse them)")
    crops.add_argument("--json", action="store_true", help="print one JSON object")
    crops.set_defaults(func=run_crops)
    for kind, what in (("breed", "DIR/<breed>/<photo>"), ("identity", "DIR/<dog>/<photo>; dogs with >= 2 photos")):
        retrieval = kinds.add_parser(kind, help=f"leave-one-out {kind} retrieval of the bare embedder: "
                                                 "recall@1, recall@5, mAP, images/s")
        retrieval.add_argument("dir", type=Path, help=what)
        retrieval.add_argument("--model", help="embedder model name (default: the embedder setting)")
        retrieval.add_argument("--device", help="cpu, cuda, cuda:N (default: the embedder setting, "
                                                "else the GPU when there is one)")
        add_split(retrieval, ("all", "train", "val", "heldout"),
                  "only photos of this split (dogsearch/eval/splits.py); identity evals use heldout for the "
                  "DogFaceNet dogs kept out of training" + (
                      "; a breed folder's photos are train or val, unless --unseen-breeds" if kind == "breed" else ""))
        if kind == "breed":
            retrieval.add_argument("--unseen-breeds", action="store_true",
                                   help="--split splits whole breeds, as for breeds no model trained on "
                                        "(splits.unseen_breed_split): Oxford-IIIT Pet's dogs, val 4 breeds, heldout "
                                        "the other 9 (the README's held-out figures)")
        retrieval.add_argument("--batch-size", type=int, default=32)
        retrieval.add_argument("--query-photos", type=int, nargs="+", default=[], metavar="N",
                               help="also recall@1 and mAP of queries of N photos of one dog, e.g. 1 2 3: all on "
                                    "the dogs with more photos than the largest N")
        retrieval.add_argument("--combine", nargs="+", choices=RULES, default=["mean"],
                               help="how --query-photos' photos are combined (gallery/multiquery.py; the search "
                                    "service's DOGSEARCH_GATEWAY_QUERY_COMBINE): one row each")
        retrieval.add_argument("--query-expansion", type=int, default=0, metavar="N",
                               help="also the figures of a search ranking by its query plus its N nearest photos "
                                    "(gallery/expansion.py; DOGSEARCH_GATEWAY_QUERY_EXPANSION), under 'search'")
        retrieval.add_argument("--query-expansion-power", type=float, default=0.0, metavar="A",
                               help="each of those photos weighs its cosine to this power "
                                    "(DOGSEARCH_GATEWAY_QUERY_EXPANSION_POWER)")
        retrieval.add_argument("--cache-dir", type=Path, metavar="DIR",
                               help="keep the photos' vectors here, by model and files (reruns reuse them)")
        retrieval.add_argument("--json", action="store_true", help="print one JSON object")
        retrieval.set_defaults(func=run_retrieval)


def add_split(parser: argparse.ArgumentParser, names: tuple[str, ...], help: str) -> None:
    """--split, one of `names` as the eval's code spells them (eval/detect.py: held-out; eval/splits.py: heldout);
    either spelling is taken, and shown as heldout, for every eval."""
    by_key = {name.replace("-", ""): name for name in names}

    def split(text: str) -> str:
        if (name := by_key.get(text.lower().replace("-", ""))) is None:
            raise argparse.ArgumentTypeError(f"invalid choice {text!r} (choose from {', '.join(by_key)})")
        return name

    parser.add_argument("--split", type=split, default="all", metavar="{" + ",".join(by_key) + "}",
                        help=f"{help} (held-out is heldout too)")


def run_watches(args: argparse.Namespace) -> int:
    from dogsearch.core.logs import configure_logging
    from dogsearch.eval.watches import run

    configure_logging("WARNING")
    return run(args)


def run_twice(args: argparse.Namespace) -> int:
    from dogsearch.core.logs import configure_logging
    from dogsearch.eval.twice import run

    configure_logging("WARNING")
    return run(args)


def run_added(args: argparse.Namespace) -> int:
    from dogsearch.core.logs import configure_logging
    from dogsearch.eval.added import run

    configure_logging("WARNING")
    return run(args)


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
    from dogsearch.eval.retrieval import evaluate_dir, load_model, searched_part

    configure_logging("WARNING")
    if not args.dir.is_dir():
        print(f"dogsearch eval {args.kind}: {args.dir} is not a folder", file=sys.stderr)
        return 2
    unseen = getattr(args, "unseen_breeds", False)
    if args.kind == "breed" and args.split == "heldout" and not unseen:
        print("dogsearch eval breed: a breed folder's photos are split train and val, none held out; "
              "--unseen-breeds --split heldout holds out whole breeds (Oxford-IIIT Pet's 9)", file=sys.stderr)
        return 2
    model = load_model(args.model, args.device)
    try:
        if any(n < 1 for n in args.query_photos):
            raise ValueError("--query-photos takes numbers of 1 or more")
        expansion = Expansion(args.query_expansion, args.query_expansion_power)
        result = evaluate_dir(model, args.dir, "unseen-breed" if unseen else args.kind, split=args.split,
                              batch_size=args.batch_size, query_photos=args.query_photos, rules=args.combine,
                              cache_dir=args.cache_dir, expansion=expansion, judged=searched_part(model.model_id))
    except ValueError as exc:
        print(f"dogsearch eval {args.kind}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        multi = result.pop("query_photos", [])
        search = result.pop("search", None)
        for key, value in result.items():
            print(f"{key:>10}: {value:.4f}" if isinstance(value, float) else f"{key:>10}: {value}")
        for row in multi:
            print(f"{row['query_photos']} query photo(s), {row['rule']}: recall@1 {row['recall@1']:.4f}, "
                  f"mAP {row['map']:.4f} ({row['queries']} queries, dogs with >= {row['min_photos']} photos)")
        if search is not None:
            how = [f"query expansion {expansion.neighbours}, power {expansion.power:g}"] if expansion.on else []
            if "rerank" in search:
                how.append("re-ranking the first {depth} by weight {weight:g}, cap {cap:g}".format(**search["rerank"]))
            print(f"as the search ranks ({'; '.join(how)}): "
                  f"recall@1 {search['recall@1']:.4f}, recall@5 {search['recall@5']:.4f}, mAP {search['map']:.4f}")
    return 0


def run_breed_guess(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from dogsearch.core.logs import configure_logging
    from dogsearch.eval.breedguess import evaluate
    from dogsearch.models.dogclass import DogClassifier

    configure_logging("WARNING")
    if not args.dir.is_dir() or (args.boxes is not None and not args.boxes.is_dir()):
        print(f"dogsearch eval breed-guess: {args.dir if not args.dir.is_dir() else args.boxes} is not a folder",
              file=sys.stderr)
        return 2
    classifier = DogClassifier(device=args.device)
    try:
        result = evaluate(args.dir, classifier.probabilities, boxes=args.boxes,
                          progress=lambda items: tqdm(items, desc="eval breed-guess", unit="batch",
                                                      disable=args.json))
    except ValueError as exc:
        print(f"dogsearch eval breed-guess: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{'breed':<28} {'ImageNet class':<28} {'photos':>6} {'top-1':>6} {'top-3':>6}")
    for label, item in result["per_breed"].items():
        print(f"{label:<28} {item['imagenet']:<28} {item['n_images']:>6} {item['top1']:>6.3f} {item['top3']:>6.3f}")
    print(f"{'all':<28} {'':<28} {result['n_images']:>6} {result['top1']:>6.3f} {result['top3']:>6.3f}")
    if result["left_out"]:
        print(f"left out (no ImageNet class): {', '.join(result['left_out'])}")
    if "crops" in result:
        crops = result["crops"]
        if crops is None:
            print("no photo has a label box")
        else:
            print(f"the {crops['whole']['n_images']} photos with a box: whole photo top-1 {crops['whole']['top1']:.3f} "
                  f"top-3 {crops['whole']['top3']:.3f}; dog crop top-1 {crops['crop']['top1']:.3f} "
                  f"top-3 {crops['crop']['top3']:.3f}")
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
    from dogsearch.eval.detect import evaluate, read_unlabelled
    from dogsearch.models.detect import DetectorError
    from dogsearch.models.registry import DEFAULT_DETECTOR, create_detector

    configure_logging("WARNING")
    try:
        unlabelled = read_unlabelled(args.unlabelled_dogs) if args.unlabelled_dogs else None
    except OSError as exc:
        print(f"dogsearch eval detect: --unlabelled-dogs: {exc}", file=sys.stderr)
        return 2
    try:
        detector = create_detector(args.detector or DEFAULT_DETECTOR, threads=args.threads, runtime=args.runtime,
                                   precision=args.precision, weights_dir=args.weights)
        result = evaluate(detector, args.dir, negatives=args.negatives, image_dirs=args.images, iou=args.iou,
                          limit=args.limit, split=args.split, unlabelled=unlabelled,
                          progress=lambda items, what: tqdm(items, desc=f"eval detect {what}", unit="photo",
                                                            disable=args.json))
    except (ValueError, DetectorError) as exc:  # DetectorError: --weights missing or altered
        print(f"dogsearch eval detect: {exc}", file=sys.stderr)
        return 2
    result.update(runtime=args.runtime, precision=args.precision)
    if args.weights is not None:
        result["weights"] = str(args.weights)
    if args.json:
        print(json.dumps(result))
        return 0
    claim = (f"scored above {result['fallback_score']} (the whole-image fallback is no dog)"
             if result["min_score"] is None else f"scored at or above its operating point {result['min_score']}")
    print(f"detector {result['detector']} ({args.runtime} {args.precision}) on {result['split']} photos; a dog box: "
          f"IoU >= {result['iou']} with a labelled dog, {claim}")
    lab = result["labelled"]
    print(f"{'labelled':<10} {'photos':>6} {'dogs':>5} {'boxes':>6} {'precision':>9} {'recall':>6} {'AP@0.5':>6} "
          f"{'none':>5} {'ms/photo':>8}  dir")
    print(f"{'':<10} {lab['n_images']:>6} {lab['n_dogs']:>5} {lab['n_detections']:>6} {_num(lab['precision']):>9} "
          f"{_num(lab['recall']):>6} {_num(lab['ap']):>6} {lab['no_dog_found']:>5} {_num(lab['ms_per_image'], 1):>8}  "
          f"{lab['dir']}")
    if "labelled_only" in lab:
        only = lab["labelled_only"]
        print(f"{'labelled only':<10} {'':>6} {only['n_dogs']:>5} {only['n_detections']:>6} "
              f"{_num(only['precision']):>9} {_num(only['recall']):>6} {_num(only['ap']):>6}  "
              f"({only['ignored']} boxes on none of the labelled dogs of {only['photos_with_unlabelled_dogs']} photos "
              "with unlabelled dogs left out)")
    if result["negatives"]:
        print(f"{'negatives':<10} {'photos':>6} {'with dog box':>12} {'FP rate':>7} {'ms/photo':>8}  dir")
        for neg in result["negatives"]:
            print(f"{'':<10} {neg['n_images']:>6} {neg['images_with_dog_box']:>12} {_num(neg['fp_rate']):>7} "
                  f"{_num(neg['ms_per_image'], 1):>8}  {neg['dir']}")
        print(f"{'all':<10} {'':>6} {'':>12} {_num(result['fp_rate']):>7}")
    return 0


def run_crops(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from dogsearch.core.logs import configure_logging
    from dogsearch.eval.crops import evaluate
    from dogsearch.eval.retrieval import load_model
    from dogsearch.models.registry import DEFAULT_DETECTOR, create_detector

    configure_logging("WARNING")
    try:
        margins = [float(m) for m in args.margins.split(",") if m.strip()]
    except ValueError:
        print(f"dogsearch eval crops: --margins takes numbers separated by commas, not {args.margins!r}",
              file=sys.stderr)
        return 2
    for folder in (args.small, args.composed, args.scenes, args.plain, *args.images):
        if folder is not None and not folder.is_dir():
            print(f"dogsearch eval crops: {folder} is not a folder", file=sys.stderr)
            return 2
    detector = create_detector(args.detector or DEFAULT_DETECTOR, threads=args.threads, look_again=args.second_look)
    model = load_model(args.model, args.device)
    try:
        result = evaluate(model, detector, small=args.small, image_dirs=args.images, composed_dir=args.composed,
                          scenes=args.scenes, plain_dir=args.plain, margins=margins, limit=args.limit,
                          seed=args.seed, max_share=args.max_share, share=tuple(args.share), side=args.scene_side,
                          cache_dir=args.cache_dir, batch_size=args.batch_size, progress=tqdm)
    except ValueError as exc:
        print(f"dogsearch eval crops: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"model {result['model']}, detector {result['detector']}: leave-one-out breed retrieval")
    for name, item in result["sets"].items():
        print(f"{name}: {item['n_images']} photos, {item['n_labels']} breeds, detector found no dog in "
              f"{item['no_dog_found']}  ({item['dir']})")
        print(f"  {'view':<14} {'R@1':>6} {'R@5':>6} {'mAP':>6}")
        for view, m in item["views"].items():
            print(f"  {view:<14} {m['recall@1']:>6.3f} {m['recall@5']:>6.3f} {m['map']:>6.3f}")
    choice = result["choice"]
    if choice:
        plain = "no plain set" if "plain" not in choice["sets"] else \
            f"within {choice['plain_tolerance']} of the whole photo on plain" if choice["any_keeps_plain"] else \
            f"no margin keeps the plain set within {choice['plain_tolerance']}"
        print(f"margin chosen: {choice['margin']:g} (the best mean detected mAP on small dogs; {plain})")
    return 0


def _num(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)
