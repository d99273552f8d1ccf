"""`dogsearch train pose`: train the default pose model on the dogpose labels and write models/pose-<name>/."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

DEFAULT_DATA = Path("../shared/data")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--labels", type=Path, default=DEFAULT_DATA / "dogpose" / "labels",
                        help="YOLO-pose label files, <id>.txt (default ../shared/data/dogpose/labels)")
    parser.add_argument("--images", type=Path, action="append",
                        help="folders searched recursively for <id>.jpg (repeatable; default "
                             "../shared/data/imagewoof and ../shared/data/dogpose/images)")
    parser.add_argument("--out", type=Path, default=Path("models/pose-lite0-fpn"))
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--input-size", type=int, default=160)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (the shipped files were made with 1; "
                             "another count may change the last bits)")
    parser.add_argument("--detector-boxes", type=float, default=0.5, metavar="SHARE",
                        help="share of training crops taken from the saliency detector's box (as the service "
                             "crops) instead of the jittered labelled box; 0: labelled boxes only")
    parser.add_argument("--detector-size", type=int, default=168,
                        help="saliency input px for --detector-boxes (the service's default)")
    parser.add_argument("--export-heldout", type=Path, metavar="DIR",
                        help="only write the held-out photos as DIR/images + DIR/labels (for `eval pose`), no training")


def run(args: argparse.Namespace) -> int:
    from dogsearch.training.pose.train import train

    images = args.images or [DEFAULT_DATA / "imagewoof", DEFAULT_DATA / "dogpose" / "images"]
    if args.export_heldout:
        from dogsearch.training.pose import data as D

        n = D.export_split(D.split_items(D.find_items(args.labels, images), "heldout"), args.export_heldout)
        print(f"{n} held-out photos in {args.export_heldout}")
        return 0
    meta = train(args.labels, images, args.out, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                 input_size=args.input_size, seed=args.seed, threads=args.threads, name=args.out.name,
                 detector_share=args.detector_boxes, detector_size=args.detector_size)
    print(json.dumps({"out": str(args.out), "train_minutes": meta["train_minutes"],
                      "heldout_label_boxes_pck@0.1": meta["heldout_label_boxes"]["pck@0.1"]}, indent=2))
    return 0
