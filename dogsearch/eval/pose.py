"""`dogsearch eval pose DIR`: PCK@0.1 and time per photo of the pose service's path on labelled photos."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from dogsearch.core.boxes import iou
from dogsearch.models.pose import keypoints as K
from dogsearch.pose.labels import parse_label_file
from dogsearch.pose.metrics import PckCounter
from dogsearch.pose.pipeline import PosePipeline


def _points(dog: dict) -> np.ndarray:
    return np.array([[kp["x"], kp["y"]] for kp in dog["keypoints"]], dtype=np.float64)


def evaluate_dir(directory: Path, *, boxes: str = "detected", limit: int | None = None,
                 pipeline: PosePipeline | None = None) -> dict:
    directory = Path(directory)
    labels = sorted((directory / "labels").glob("*.txt"))
    if not labels:
        raise SystemExit(f"no label files in {directory / 'labels'}")
    if limit:
        labels = labels[:limit]
    if pipeline is None:
        from dogsearch.services.pose.app import pipeline_from_settings
        from dogsearch.services.pose.settings import PoseSettings

        pipeline = pipeline_from_settings(PoseSettings())
    counter = PckCounter()
    times, cpu_times, n_dogs, matched = [], [], 0, 0
    for i, label in enumerate(tqdm(labels, desc="eval pose", unit="photo")):
        image_path = next((p for p in (directory / "images" / f"{label.stem}{ext}" for ext in (".jpg", ".jpeg",
                                                                                              ".png")) if p.is_file()),
                          None)
        if image_path is None:
            raise SystemExit(f"no image for {label.name} under {directory / 'images'}")
        with Image.open(image_path) as im:
            image = im.convert("RGB")
        truth = parse_label_file(label, image.width, image.height)
        start, cpu = time.perf_counter(), time.process_time()
        if boxes == "labelled":
            poses = pipeline.model.predict(image, np.array([d.box for d in truth]))
            predicted = [(d.box, p.points) for d, p in zip(truth, poses, strict=True)]
        else:
            result = pipeline.run(image)
            predicted = [(dog["box"], _points(dog)) for dog in result["dogs"]]
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        if i > 0:  # the first call pays for lazy initialisation
            times.append(elapsed)
            cpu_times.append(cpu)
        used: set[int] = set()
        for dog in truth:
            n_dogs += 1
            best, best_iou = None, 0.1  # a detection must overlap the labelled dog at least a little
            for j, (box, _) in enumerate(predicted):
                overlap = iou(box, dog.box)
                if j not in used and overlap > best_iou:
                    best, best_iou = j, overlap
            if best is not None:
                used.add(best)
                matched += 1
            counter.add(predicted[best][1] if best is not None else None, dog.points, dog.visible, dog.box)
    per_joint = counter.per_joint()
    return {
        "pck@0.1": counter.pck,
        "per_joint": {name: {"pck": per_joint[name], "n": int(counter.counts[j])}
                      for j, name in enumerate(K.AP10K_NAMES)},
        "n_images": len(labels),
        "n_dogs": n_dogs,
        "dogs_found": matched,
        "n_keypoints": int(counter.counts.sum()),
        "model": pipeline.model_id,
        "detector": pipeline.detector.name if boxes == "detected" else "labelled boxes",
        "boxes": boxes,
        "ms_per_image": round(1000 * float(np.mean(times)), 1) if times else None,
        # all the process's threads: what a machine shared with other jobs disturbs least
        "cpu_ms_per_image": round(1000 * float(np.mean(cpu_times)), 1) if cpu_times else None,
    }
