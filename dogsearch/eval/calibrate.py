"""`dogsearch train calibration`: the embedder's score → "same dog" probability map, fit on validation dogs' pairs
of photos and measured on held-out dogs (dogsearch/eval/verification.py), written as models/<model>/calibration.json
(dogsearch/models/calibration.py reads it).

Faces (DogFaceNet): the map is fit on the *val* dogs (the ViT trained on the *train* dogs). Whole bodies
(dog-id-body): the *val* dogs by default, since the default model trained on the *train* dogs; a model that never
saw them may fit on both (``--body-fit val,train``, as ``vit_small_dinov2-lora-dogs-v1``'s map was). Both are
measured on their *heldout* dogs.

Near misses: photos of one breed are all of different dogs, and a search's first results for a dog are mostly dogs
of its breed. Their pairs within a breed (Imagewoof's val split and Oxford's val breeds, the ViT tuned on neither)
take a share of the different-dog half of the fit, and Imagewoof's dev folder and Oxford's held-out breeds measure
how often a photo's best match, always another dog there, would read as likely the same dog.

A fusion (``--judged-by-base``) is ranked by its whole vector and judged by its ViT part, which is its base's vector
exactly (dogsearch/core/judged.py): its file is then the base's map with that ``part``, nothing fit anew, and what
it measures is the first results of the held-out searches ranked by the fusion and judged by the part, beside the
base's own.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dogsearch.core.paths import MODELS_DIR, REPO_ROOT

DATA = REPO_ROOT.parent / "shared" / "data"  # the development data beside the checkout


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--faces", type=Path, default=DATA / "dogfacenet", help="DIR/<dog>/<photo> of dog faces")
    parser.add_argument("--bodies", type=Path, default=DATA / "dog-id-body",
                        help="DIR/<dog>/<photo> of whole dogs")
    parser.add_argument("--breeds", type=Path, default=DATA / "imagewoof",
                        help="DIR/train/<breed>/ and DIR/dev/<breed>/: other dogs of one breed, as near misses")
    parser.add_argument("--unseen-breeds", type=Path, default=DATA / "oxford-pets" / "dogs",
                        help="DIR/<breed>/ of breeds the model was not tuned on, as near misses")
    parser.add_argument("--breed-photos", type=int, default=40, help="the first N photos of each breed")
    parser.add_argument("--face-fit", default="val", help="comma-separated splits of face dogs to fit on")
    parser.add_argument("--body-fit", default="val",
                        help="comma-separated splits of body dogs to fit on (val,train for a model that never saw the "
                             "train dogs)")
    parser.add_argument("--model", help="embedder model name (default: the embedder setting)")
    parser.add_argument("--device", help="cpu, cuda, cuda:N (default: the embedder setting)")
    parser.add_argument("--method", choices=["auto", "isotonic", "platt"], default="auto",
                        help="auto: the one with the lower mean calibration error on held-out dogs")
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR,
                        help="write MODELS_DIR/<model>/calibration.json")
    parser.add_argument("--cache-dir", type=Path, help="keep the photos' vectors here (reruns reuse them)")
    parser.add_argument("--judged-by-base", action="store_true",
                        help="a fusion model: rank by the fusion, judge by its base ViT's part with the base's map "
                             "(measured on the held-out searches)")
    parser.add_argument("--dry-run", action="store_true", help="measure, write nothing")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def calibration_sets(args: argparse.Namespace):
    """(embed(name, paths) -> the photos' vectors as a search makes them, cached under --cache-dir; the vectors'
    model id; the photo sets; how many photos of each embedded part showed no dog, filled as they are embedded) of
    the arguments. ValueError when a folder is missing or the detector is off."""
    from tqdm import tqdm

    from dogsearch.eval.retrieval import load_model
    from dogsearch.eval.verification import PhotoSet, cached, search_crops_vectors
    from dogsearch.services.embedder.dogs import crop_model_id
    from dogsearch.services.embedder.settings import EmbedderSettings

    breeds_train, breeds_dev = args.breeds / "train", args.breeds / "dev"
    for folder in (args.faces, args.bodies, breeds_train, breeds_dev, args.unseen_breeds):
        if not folder.is_dir():
            raise ValueError(f"{folder} is not a folder")
    settings = EmbedderSettings()
    if not settings.detects:
        raise ValueError("the embedder's detector is off; searches compare whole photos, which this command does "
                         "not calibrate")
    model = load_model(args.model, args.device)
    detector = settings.build_detector(alone=True)
    limits = settings.image_limits()
    decode_side = max(model.decode_side, settings.dog_decode_side)
    vectors_id = crop_model_id(model.model_id)

    def embed(name: str, paths: list[Path]):
        key = {"vectors": vectors_id, "detector": settings.detector, "decode_side": decode_side,
               "files": [str(p) for p in paths]}
        vectors, no_dog = cached(args.cache_dir, key, lambda: search_crops_vectors(
            model, detector, paths, limits=limits, decode_side=decode_side,
            progress=lambda items: tqdm(items, desc=f"embed {name}", unit="photo", disable=args.json)))
        no_dogs[name] = no_dog
        return vectors

    no_dogs: dict[str, int] = {}
    sets = [PhotoSet("faces", args.faces, tuple(args.face_fit.split(","))),
            PhotoSet("bodies", args.bodies, tuple(args.body_fit.split(","))),
            # photos the ViT was not tuned on: Imagewoof train's val split (fit) and its dev folder (measured)
            PhotoSet("breeds", breeds_train, ("val",), kind="breeds", split="breed", heldout_root=breeds_dev,
                     per_label=args.breed_photos),
            PhotoSet("unseen-breeds", args.unseen_breeds, ("val",), kind="breeds", split="unseen-breed",
                     per_label=args.breed_photos)]
    return embed, vectors_id, sets, no_dogs


def shipped(args: argparse.Namespace, command: str):
    """(embed, the vectors' model id, the photo sets, the shipped calibration of those vectors, with its lead curve)
    of the arguments, for the evaluations that read that calibration; None, said as ``COMMAND: why`` on stderr,
    when calibration_sets refuses or there is no such calibration."""
    from dogsearch.models.calibration import find

    try:
        embed, vectors_id, sets, _ = calibration_sets(args)
    except ValueError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return None
    calibration = find(vectors_id, args.models_dir)
    if calibration is None or calibration.first is None:
        print(f"{command}: no calibration with a lead curve for {vectors_id}", file=sys.stderr)
        return None
    return embed, vectors_id, sets, calibration


def embedded(embed, sets, split: str) -> list:
    """Each set's (vectors, labels, every photo another dog?) of one split ("fit" or "heldout"), as
    verification.first_results takes them."""
    parts = []
    for photo_set in sets:
        chosen = photo_set.parts()[split]
        parts.append((embed(f"{photo_set.name}-{split}", [p for p, _ in chosen]), [lab for _, lab in chosen],
                      photo_set.kind == "breeds"))
    return parts


def run(args: argparse.Namespace) -> int:
    from dogsearch.eval.verification import calibrate
    from dogsearch.models.calibration import Calibration, path_for
    from dogsearch.services.embedder.settings import EmbedderSettings

    try:
        embed, vectors_id, sets, no_dogs = calibration_sets(args)
    except ValueError as exc:
        print(f"dogsearch train calibration: {exc}", file=sys.stderr)
        return 2
    if args.judged_by_base:
        return judged_by_base(args, embed, vectors_id, sets)
    settings = EmbedderSettings()
    try:
        report = calibrate(embed, sets, ("isotonic", "platt") if args.method == "auto" else (args.method,))
    except ValueError as exc:
        print(f"dogsearch train calibration: {exc}", file=sys.stderr)
        return 2
    fitted = report.pop("fit")
    report.update({"vectors": vectors_id, "detector": settings.detector, "photos_without_a_dog": no_dogs})
    # what made the file, without the flags that change nothing in it (where vectors are cached, the output form)
    command = " ".join(["dogsearch train calibration", *(f"--{k.replace('_', '-')} {v}" for k, v in (
        ("model", args.model), ("face_fit", args.face_fit), ("body_fit", args.body_fit),
        ("breed_photos", args.breed_photos), ("method", args.method))
        if v is not None)])
    calibration = Calibration(vectors_id, fitted.method, fitted.params, 0.5, {
        "measured": {k: report[k] for k in ("sets", "methods", "chosen", "detector", "photos_without_a_dog")},
        "command": command.strip()}, first=report["first"])
    out = path_for(vectors_id, args.models_dir)
    if _written(args, calibration, report):
        return 0
    print(f"vectors {vectors_id} (detector {settings.detector}); photos where it found no dog: {no_dogs}")
    print(f"{'set':<14} {'part':<8} {'labels':>6} {'photos':>6} {'same':>6} {'diff':>8} {'AUC':>6} {'EER':>6} "
          f"{'TMR@1%':>7} {'thr@1%':>7}")
    for name, info in report["sets"].items():
        for part in ("fit", "heldout"):
            r = info[part]
            if info["kind"] == "breeds":  # different dogs of one breed only
                print(f"{name:<14} {part:<8} {r['breeds']:>6} {r['photos']:>6} {0:>6} {r['pairs_different']:>8}"
                      f"  mean cosine {r['mean_score']:.4f}")
                continue
            print(f"{name:<14} {part:<8} {r['dogs']:>6} {r['photos']:>6} {r['pairs_same']:>6} "
                  f"{r['pairs_different']:>8} {r['roc_auc']:>6.4f} {r['eer']:>6.4f} {r['tmr@fmr1%']:>7.4f} "
                  f"{r['threshold@fmr1%']:>7.4f}")
    print("first results of searches in one gallery of every held-out photo (share of queries; pair: its score "
          "alone, search: as answered)")
    for method, m in report["methods"].items():
        print(f"{method}: mean held-out ECE of pairs {m['mean_ece']:.4f}")
        for name, v in m["heldout"].items():
            f = v["first_result"]
            cells = "  ".join(f"{rule}: right+likely {f[rule]['right_likely']:.3f}, wrong+likely "
                              f"{f[rule]['wrong_likely']:.3f}, wrong+possible {f[rule]['wrong_possible_or_likely']:.3f}"
                              for rule in ("pair", "search"))
            print(f"    {name:<14} ECE {v['ece']:.4f}; {f['queries']} queries, first right {f['right']:.3f}; {cells}")
    print(f"chosen: {report['chosen']}" + (f"; written {out}" if not args.dry_run else " (dry run: not written)"))
    return 0


def _written(args: argparse.Namespace, calibration, report: dict) -> bool:
    """Writes the file (unless --dry-run; report["written"] says where) and prints the report with --json: True
    then, and nothing more is printed."""
    from dogsearch.models.calibration import path_for

    if not args.dry_run:
        out = path_for(calibration.vectors, args.models_dir)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(calibration.to_json(), indent=1) + "\n")
        report["written"] = str(out)
    if args.json:
        print(json.dumps(report))
    return args.json


LIKELY, POSSIBLE = 0.9, 0.5  # the gateway's default thresholds


def judged_by_base(args: argparse.Namespace, embed, vectors_id: str, sets) -> int:
    """A fusion's calibration that reads its ViT part with its base's map (the base's own file, checked), and the
    first results of the held-out searches, both ways: the base alone, and ranked by the fusion, judged by the part."""
    import numpy as np

    from dogsearch.core.judged import judged_part
    from dogsearch.eval.verification import first_results
    from dogsearch.models.calibration import Calibration, CalibrationError, load, path_for
    from dogsearch.models.fusion import check_vit_part, vit_part
    from dogsearch.services.embedder.dogs import crop_model_id

    name = vectors_id.split("@", 1)[0]
    config = json.loads((args.models_dir / name / "config.json").read_text())
    base_id = crop_model_id(config.get("base", ""))
    try:
        check_vit_part(config)
        base = load(path_for(base_id, args.models_dir))
    except CalibrationError as exc:
        print(f"dogsearch train calibration: the base's calibration: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # not a fusion with a ViT part
        print(f"dogsearch train calibration: {exc}", file=sys.stderr)
        return 2
    if base.vectors != base_id or base.part is not None:
        print(f"dogsearch train calibration: {base_id}'s file is for {base.vectors}", file=sys.stderr)
        return 2
    parts = []
    for photo_set in sets:
        chosen = photo_set.parts()["heldout"]
        parts.append((embed(f"{photo_set.name}-heldout", [q for q, _ in chosen]), [lab for _, lab in chosen],
                      photo_set.kind == "breeds"))
    part = vit_part(config, parts[0][0].shape[1])
    read = judged_part(part)
    vit = [(read.queries(v), labels, own) for v, labels, own in parts]  # the base's vectors, padded
    rerank = None if read.rerank is None else (read.rerank, [read.rest_queries(v) for v, _, _ in parts])
    measured = {}
    for run, rank, judged, again in ((f"{base_id} alone", vit, None, None),
                                     (f"{vectors_id} ranks, its part judges", parts, [v for v, _, _ in vit], rerank)):
        first, second, right, set_of = first_results(rank, judged, again)
        p = np.array([base.results([a, b])[0] for a, b in zip(first, second, strict=True)])
        measured[run] = {s.name: _shares(right[set_of == i], p[set_of == i]) for i, s in enumerate(sets)}
    command = f"dogsearch train calibration --model {name} --judged-by-base"
    calibration = Calibration(vectors_id, base.method, base.params, base.prior, {
        "judged_by": {"vectors": base_id, "sha256": base.to_json()["sha256"]},
        "measured": {"first_results": measured, "thresholds": {"likely": LIKELY, "possible": POSSIBLE}},
        "command": command}, first=base.first, part=part)
    report = {"vectors": vectors_id, "part": part, "first_results": measured}
    if _written(args, calibration, report):
        return 0
    print(f"{vectors_id}: judged by its first {part['dims']} components (scale {part['scale']}) with {base_id}'s map")
    for run, by_set in measured.items():
        print(run)
        for set_name, r in by_set.items():
            print(f"    {set_name:<14} {r['queries']:>5} queries: right {r['right']:.3f}, right+likely "
                  f"{r['right_likely']:.3f}, wrong+likely {r['wrong_likely']:.3f}, wrong+possible "
                  f"{r['wrong_possible_or_likely']:.3f}")
    print(f"written {report['written']}" if not args.dry_run else "(dry run: not written)")
    return 0


def _shares(right, p) -> dict:
    """The share of queries whose first result is right, right and likely, wrong and likely, wrong and at least
    possible."""
    return {"queries": int(len(right)), "right": round(float(right.mean()), 4),
            "right_likely": round(float((right & (p >= LIKELY)).mean()), 4),
            "wrong_likely": round(float((~right & (p >= LIKELY)).mean()), 4),
            "wrong_possible_or_likely": round(float((~right & (p >= POSSIBLE)).mean()), 4)}
