"""`dogsearch train embedder`: arguments (cheap to import) and the entry point."""
from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from pathlib import Path

DATA = Path("../shared/data")


HELP = {"augment": "pil: views made by PIL in the loader's processes, each photo decoded for every view; device: each "
                   "photo decoded once, its views made on the training device (a GPU's way)",
        "augment_side": "--augment device: each photo kept scaled to fit this square (pixels)"}


def _config_arguments(parser: argparse.ArgumentParser, config_class) -> None:
    """One --flag per field of a training config dataclass, with its type and default."""
    for f in dataclasses.fields(config_class):
        parser.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default,
                            help=HELP.get(f.name))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from dogsearch.training.embedder.config import TrainConfig

    parser.add_argument("--base", default="efficientnet_lite0", help="frozen backbone (a create_model name)")
    parser.add_argument("--teacher", default="base",
                        help="model distilled into the head: 'base' (the backbone itself), 'none', or a name")
    parser.add_argument("--model-id", required=True, help="name of the trained model (models/<model-id>/)")
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--breed-dir", type=Path, default=DATA / "imagewoof/train")
    parser.add_argument("--identity-dir", type=Path, default=DATA / "dogfacenet",
                        help="one folder per dog; only the 'train' dogs train, the 'val' dogs validate")
    parser.add_argument("--breed-per-label", type=int, default=60,
                        help="photos per breed used for training (0: all); validation: --breed-val-per-label")
    parser.add_argument("--breed-val-per-label", type=int, default=20, help="0: all")
    parser.add_argument("--identity-share", type=int, default=50,
                        help="percent of the training dogs used (a deterministic subset; 100: all)")
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/features"), help="feature cache")
    parser.add_argument("--out", type=Path, help="checkpoint + log folder (default .cache/train/<model-id>)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    _config_arguments(parser, TrainConfig)


def add_finetune_arguments(parser: argparse.ArgumentParser) -> None:
    from dogsearch.training.embedder.config import FinetuneConfig

    parser.add_argument("--model-id", required=True, help="name of the trained model (models/<model-id>/)")
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--base", default="vit_small_dinov2", help="the backbone to adapt (a create_model name)")
    parser.add_argument("--base-weights", type=Path,
                        help="a safetensors copy of the converted base (for machines without its registry package)")
    parser.add_argument("--teacher", default="efficientnet_lite0", help="a create_model name, or 'none'")
    parser.add_argument("--teacher-weights", type=Path, help="local weights for the teacher")
    parser.add_argument("--breed-dir", type=Path, default=DATA / "imagewoof/train")
    parser.add_argument("--identity-dir", type=Path, default=DATA / "dogfacenet")
    parser.add_argument("--limit", type=int, help="at most this many photos per set (a quick smoke run)")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when there is one)")
    parser.add_argument("--workers", type=int, default=8, help="data-loading processes")
    parser.add_argument("--out", type=Path, help="checkpoint + log folder (default .cache/train/<model-id>)")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--stop-after", type=int, help="stop after this epoch of the --epochs schedule")
    parser.add_argument("--max-minutes", type=float,
                        help="stop after the last epoch that fits in this time (the best epoch is kept)")
    _config_arguments(parser, FinetuneConfig)


def _features(name: str, device: str, args: argparse.Namespace) -> dict:
    from dogsearch.eval.retrieval import load_model
    from dogsearch.training.embedder.features import load_or_extract

    model = load_model(name, device, exact=True)
    sets = {
        "breed": (args.breed_dir, "breed", "train", args.breed_per_label or None, 100),
        "breed_val": (args.breed_dir, "breed", "val", args.breed_val_per_label or None, 100),
        "identity": (args.identity_dir, "identity", "train", None, args.identity_share),
        "identity_val": (args.identity_dir, "identity", "val", None, 100),
    }
    return {key: load_or_extract(model, root, kind, split, cache_dir=args.cache_dir, per_label=n,
                                 label_share=share)
            for key, (root, kind, split, n, share) in sets.items()}


def run(args: argparse.Namespace) -> int:
    from dogsearch.models.heads import save_head
    from dogsearch.training.embedder.config import TrainConfig
    from dogsearch.training.embedder.train import Split, TrainData, Trainer

    config = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
    base = _features(args.base, config.device, args)
    teacher_name = None if args.teacher == "none" else args.base if args.teacher == "base" else args.teacher
    teacher = base if teacher_name == args.base else _features(teacher_name, config.device, args) \
        if teacher_name else None
    data = TrainData(**{k: Split.from_cache(v, teacher[k] if teacher else None) for k, v in base.items()})
    out = args.out or Path(".cache/train") / args.model_id
    trainer = Trainer(config, data, out)
    state = trainer.fit(resume=args.resume)
    best = state.history[state.best_epoch - 1] if state.best_epoch > 0 else {}
    from dogsearch.eval.retrieval import load_model

    saved = save_head(trainer.best_embedding_head(), args.models_dir / args.model_id, {
        "model_id": args.model_id, "base": args.base,
        "base_model_id": load_model(args.base, "cpu", exact=True).model_id,
        "teacher": teacher_name, "recipe": dataclasses.asdict(config), "best_epoch": state.best_epoch,
        "validation": {k: v for k, v in best.items() if k.startswith("val_")},
        "command": "dogsearch " + shlex.join(sys.argv[1:]),
    })
    print(json.dumps({"model": args.model_id, "best_epoch": state.best_epoch, "sha256": saved["sha256"]}))
    return 0


def run_finetune(args: argparse.Namespace) -> int:
    from dogsearch.training.embedder.finetune import run as finetune

    return finetune(args)
