"""The outline refiner on a fold's test scans thinned to ~4 mm slices (saunet.experiments.thick_slices), against the
same fold model without it (the map the refiner started from), body-wise as the thick-slice report scores.

    python reports/levels/refine/thick.py runs/fine-zoom2/sau-net/fold_0/checkpoint_best.pt \
        runs/refine-cli/fold_0/refiner.onnx reports/levels/cv60-prior/splits.json 0 runs/refine-cli/thick-fine-zoom2.json \
        ../shared/data/lumbar-t2 ../shared/data/lumbar-water-fat
"""

import json
import sys
from pathlib import Path

from saunet.crossval import gather_cases
from saunet.datasets import read_case
from saunet.experiments.thick_slices import scored_labels, thick_copies
from saunet.inference import Segmenter


def main(checkpoint: Path, refiner: Path, splits: Path, fold: int, out: Path, data: list[Path]) -> None:
    cases, rows = gather_cases(data), []
    segmenter = Segmenter(checkpoint, refine=refiner)
    for name in json.loads(splits.read_text())["folds"][fold]["test"]:
        image, label, slice_mm = thick_copies(*read_case(cases[name]))
        result = segmenter.segment(image)  # the level network's map before the refiner is its network_labels
        verdict = segmenter.assess(image, result)
        for kind, labels in (("coarse", result.network_labels), ("refined", result.labels)):
            rows.append({"case": name, "fold": fold, "model": kind, "slice_mm": slice_mm,
                         **scored_labels(labels, verdict, label, cases[name].dataset)})
        print(name, *(f"{r['body_dice']:.4f}" for r in rows[-2:]), flush=True)
    out.write_text(json.dumps({"cases": rows}, indent=1))


if __name__ == "__main__":
    checkpoint, refiner, splits, fold, out, *data = sys.argv[1:]
    main(Path(checkpoint), Path(refiner), Path(splits), int(fold), Path(out), [Path(p) for p in data])
