"""`dogsearch train fusion`: cache the parts of every set, choose the fusion's weights on the validation sets,
optionally learn a linear projection, write models/<model-id>/ and print every set's metrics."""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import asdict
from pathlib import Path

DATA = Path("../shared/data")
BREED_GRID = "0,0.1,0.2,0.3,0.4,0.5,0.75,1"
REPORT_SETS = ("oxford_heldout", "oxford", "iw_dev", "dfn_heldout", "body_heldout", "body")
PARTS_OF = {"oxford": ("oxford_val", "oxford_heldout"), "body": ("body_train", "body_val", "body_heldout")}
WHOLE_OF = {part: whole for whole, parts in PARTS_OF.items() for part in parts}  # each split's cached set


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-id", required=True, help="name of the fused model (models/<model-id>/)")
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--base", default="vit_small_dinov2-lora-dogs-v1", help="the ViT (a create_model name)")
    parser.add_argument("--data", type=Path, default=DATA, help="the folder of oxford-pets/, imagewoof/, ...")
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/fusion"), help="cached parts of each set")
    parser.add_argument("--cnn-weights", default="0",
                        help="weights tried for the CNN's pooled features (1280-d: with --out-dim, else the vector "
                             "is too large to keep at a million dogs)")
    parser.add_argument("--breed-weights", default=BREED_GRID, help="weights tried for the breed probabilities")
    parser.add_argument("--max-drop", type=float, default=0.005,
                        help="largest validation mAP loss on any set (against the ViT alone) a choice may cost")
    parser.add_argument("--rerank-weights", default="",
                        help="weights of the capped breed cosine tried for re-ranking a search's first dogs "
                             "(core/judged.py; none: no re-ranking)")
    parser.add_argument("--rerank-caps", default="0.2,0.3,0.4,0.5", help="caps of the breed cosine tried for it")
    parser.add_argument("--rerank-depth", type=int, default=100, help="how many first dogs a search re-ranks")
    parser.add_argument("--out-dim", type=int, default=0, help="learn a projection to this size (0: none)")
    parser.add_argument("--epochs", type=int, default=20,
                        help="projection epochs (the best on val within --max-drop is kept)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--w-distill", type=float, default=1.0)
    parser.add_argument("--breed-per-label", type=int, default=100,
                        help="Imagewoof training photos a breed the projection trains on")
    parser.add_argument("--identity-share", type=int, default=100,
                        help="percentage of DogFaceNet's train dogs the projection trains on (all their photos)")
    parser.add_argument("--report", default=",".join(REPORT_SETS),
                        help="held-out sets to report (each is embedded once and cached)")
    parser.add_argument("--device", default="cpu", help="where the networks run while the parts are cached")
    parser.add_argument("--dry-run", action="store_true", help="measure and print, write no model")


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def run(args: argparse.Namespace) -> int:
    from dogsearch.training.fusion.features import PartExtractor, load_or_extract
    from dogsearch.training.fusion.train import (
        TRAIN_SETS,
        VAL_SETS,
        choose_rerank,
        choose_weights,
        evaluate,
        floor_of,
        rerank_grid,
        set_items,
        subset,
        train_projection,
        weight_grid,
    )

    def log(row: dict) -> None:
        print(json.dumps(row), file=sys.stderr, flush=True)

    extractor = PartExtractor(args.base, device=args.device)
    report_sets = [name for name in args.report.split(",") if name]
    if set(report_sets) - set(REPORT_SETS):
        print(f"dogsearch train fusion: --report takes {', '.join(REPORT_SETS)}", file=sys.stderr)
        return 2
    # Oxford's breeds and dog-id-body's dogs are split after caching: each set is embedded once
    needed = {*VAL_SETS, *report_sets, *(TRAIN_SETS if args.out_dim else ())}
    cached = {WHOLE_OF.get(name, name) for name in needed}
    sizes = {"iw_train": {"breed_per_label": args.breed_per_label},
             "dfn_train": {"identity_share": args.identity_share}}
    sets = {name: load_or_extract(extractor, set_items(name, args.data, **sizes.get(name, {})),
                                  args.cache_dir / extractor.vit_id / _cache_name(name, sizes.get(name, {})))
            for name in sorted(cached)}
    for part in needed & WHOLE_OF.keys():
        sets[part] = subset(sets[WHOLE_OF[part]], set_items(part, args.data))
    weights, grid = choose_weights(sets, weight_grid(_floats(args.cnn_weights), _floats(args.breed_weights)),
                                   max_drop=args.max_drop, log=log)
    projection = history = rerank = None
    if args.rerank_weights:
        if args.out_dim:
            print("dogsearch train fusion: a re-ranking reads the ViT part, which a projection mixes away",
                  file=sys.stderr)
            return 2
        rerank, _ = choose_rerank(sets, weights, rerank_grid(_floats(args.rerank_weights), _floats(args.rerank_caps),
                                                             args.rerank_depth),
                                  floor_of(grid[0]["val"], args.max_drop), log=log)
    if args.out_dim:
        train = {name: sets[name] for name in TRAIN_SETS}
        alone = grid[0]["val"]  # choose_weights scores the ViT alone first
        projection, history = train_projection(train, weights, args.out_dim, epochs=args.epochs, sets=sets,
                                               lr=args.lr, w_distill=args.w_distill,
                                               floor=floor_of(alone, args.max_drop), log=log)
        if projection is None:
            print(f"dogsearch train fusion: no epoch of the projection kept every validation set within "
                  f"--max-drop {args.max_drop} of the ViT alone (history above)", file=sys.stderr)
            return 1
    report = {"weights": weights, "rerank": None if rerank is None else asdict(rerank),
              "val": evaluate(sets, weights, projection, VAL_SETS, rerank),
              "reported": evaluate(sets, weights, projection, report_sets, rerank),
              "base_alone": evaluate(sets, {"vit": 1.0}, None, [*VAL_SETS, *report_sets])}
    if rerank is not None:
        report["reported_without_rerank"] = evaluate(sets, weights, projection, report_sets)
    if not args.dry_run:
        report["model"] = _save(args, extractor, weights, projection, history, report)
    print(json.dumps(report))
    return 0


def _cache_name(name: str, size: dict[str, int]) -> str:
    return "-".join([name, *(str(v) for v in size.values())]) + ".pt"


def _save(args, extractor, weights, projection, history, report) -> str:
    from dogsearch.models.fusion import save_projection

    folder = args.models_dir / args.model_id
    folder.mkdir(parents=True, exist_ok=True)
    fusion = {"weights": {k: v for k, v in weights.items() if v}, "cnn_model_id": extractor.cnn_id}
    if report["rerank"] is not None:
        fusion["rerank"] = report["rerank"]
    if projection is not None:
        fusion["projection"] = save_projection(projection, folder)
        (folder / "history.jsonl").write_text("".join(json.dumps(row) + "\n" for row in history))
    config = {"model_id": args.model_id, "kind": "fusion", "base": args.base, "base_model_id": extractor.vit_id,
              "fusion": fusion, "validation": report["val"],
              "command": "dogsearch " + shlex.join(sys.argv[1:])}
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return str(folder)
