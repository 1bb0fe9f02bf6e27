"""The two-seed ensemble with its members quantized to 8-bit integers (saunet.export.quantize_onnx), against the
same members' float ONNX exports, on every CV test scan: each fold's two best checkpoints exported, quantized with
activation ranges calibrated on three training scans of each data set of that fold, and both ensembles segment the
fold's test scans as `saunet segment` does. One JSON of per-case rows per ensemble and variant (compare.py reads
them), with the voxels whose label differs from the float ensemble's and the seconds segmenting took (in-process).
Variants (``--variants``) are the scans unlike the calibration scans: intensity-inverted and T1-like (as quality
control's calibration makes them) and ~4 mm slices (as the thick-slice experiment makes them).

    python reports/levels/seed-ensemble/int8.py runs/both-base runs/both-seed1 --data ../shared/data/lumbar-t2 \
        ../shared/data/lumbar-water-fat --out runs/int8
    python reports/levels/seed-ensemble/int8.py runs/both-base runs/both-seed1 --data ../shared/data/lumbar-t2 \
        ../shared/data/lumbar-water-fat --folds 0 --variants inverted T1-like thick --out runs/int8
"""

import argparse
import json
import sys
import time
from pathlib import Path

from saunet.crossval import fold_checkpoints, gather_cases
from saunet.datasets import read_case
from saunet.evaluation import level_map_metrics
from saunet.experiments.thick_slices import VARIANTS, scan_variant
from saunet.export import CALIBRATION_SCANS, export_onnx, quantize_onnx
from saunet.inference import Segmenter


def calibration_scans(train: list[str], cases: dict) -> list[Path]:
    by_set: dict[str, list[Path]] = {}
    for name in train:
        by_set.setdefault(cases[name].dataset, []).append(cases[name].image)
    return [scan for scans in by_set.values() for scan in scans[:CALIBRATION_SCANS]]


def fold_models(checkpoints: list[Path], scans: list[Path], folder: Path, fold: int) -> dict[str, list[Path]]:
    folder.mkdir(parents=True, exist_ok=True)
    models = {"float": [], "int8": []}
    for k, checkpoint in enumerate(checkpoints):
        exported = export_onnx(checkpoint, folder / f"member{k}-fold{fold}.onnx")
        models["float"].append(exported)
        models["int8"].append(quantize_onnx(exported, scans, folder / f"member{k}-fold{fold}-int8.onnx"))
    return models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cv", type=Path)
    parser.add_argument("member", type=Path)
    parser.add_argument("--data", type=Path, nargs="+", required=True)
    parser.add_argument("--folds", type=lambda text: [int(k) for k in text.split(",")], default=None)
    parser.add_argument("--variants", nargs="+", default=["original"], choices=VARIANTS)
    parser.add_argument("--out", type=Path, required=True)
    arguments = parser.parse_args()
    splits = json.loads((arguments.cv / "splits.json").read_text())["folds"]
    cases = gather_cases(arguments.data)
    rows = {(name, kind): [] for name in ("float", "int8") for kind in arguments.variants}
    for fold, split in enumerate(splits):
        if arguments.folds is not None and fold not in arguments.folds:
            continue
        checkpoints = fold_checkpoints(arguments.cv / "sau-net" / f"fold_{fold}", [arguments.member])
        models = fold_models(checkpoints, calibration_scans(split["train"], cases), arguments.out / "models", fold)
        segmenters = {name: Segmenter(paths) for name, paths in models.items()}
        for case, kind in ((case, kind) for case in split["test"] for kind in arguments.variants):
            image, label = scan_variant(*read_case(cases[case]), kind)
            reference = segmenters["float"].label_map.apply(label.array)
            labels = {}
            for name, segmenter in segmenters.items():
                started = time.perf_counter()
                labels[name] = segmenter.segment(image).labels
                seconds = time.perf_counter() - started
                rows[name, kind].append({"case": case, "dataset": cases[case].dataset, "fold": fold,
                                         **level_map_metrics(labels[name], reference, label.array, label.spacing),
                                         "voxels_differing": int((labels[name] != labels["float"]).sum()),
                                         "segment_seconds": seconds})
            print(case, kind, {name: round(rows[name, kind][-1]["body_dice"], 4) for name in segmenters},
                  rows["int8", kind][-1]["voxels_differing"], file=sys.stderr, flush=True)
    for (name, kind), saved in rows.items():
        file = f"{name}.json" if kind == "original" else f"{name}-{kind}.json"
        (arguments.out / file).write_text(json.dumps({"command": " ".join(sys.argv), "cases": saved}, indent=1))

if __name__ == "__main__":
    main()
