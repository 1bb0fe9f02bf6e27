"""The outline refiner (saunet.refinement) applied to a CV fold's saved level maps, scored as `saunet cv` scores them.

    saunet train-refiner --data ../shared/data/lumbar-t2 --data ../shared/data/lumbar-water-fat \
        --splits reports/levels/cv60-prior/splits.json --fold 0 --steps 3000 --threads 2 --out runs/refine-cli/fold_0
    python reports/levels/refine/refine.py runs/refine-cli/fold_0/refiner.onnx reports/levels/cv60-prior/splits.json 0 \
        runs/fine-zoom2/sau-net/fold_0/predictions runs/refine-cli/fine-zoom2 \
        ../shared/data/lumbar-t2 ../shared/data/lumbar-water-fat
    python reports/levels/recipe/compare.py "coarse=runs/fine-zoom2/sau-net/fold_0" \
        "refined=runs/refine-cli/fine-zoom2/evaluation.json"

The refiner is trained on the fold's training scans only; the level maps are the fold model's for its test scans
(post-processed, as `saunet cv` saves them). Writes the refined maps and ``evaluation.json`` to OUT.
"""

import json
import sys
from pathlib import Path

import numpy as np

from saunet.crossval import gather_cases
from saunet.datasets import read_case
from saunet.evaluation import level_map_metrics
from saunet.imageio import read_volume, write_like
from saunet.inference import refined_in_box
from saunet.orientation import volume_layout
from saunet.preprocessing import normalise_intensities
from saunet.refinement import CLIP_PERCENTILES, OutlineRefiner
from saunet.refiner_training import BODY_VALUES


def main(refiner_path: Path, splits: Path, fold: int, predictions: Path, out: Path, data: list[Path]) -> None:
    refiner, cases, rows = OutlineRefiner(refiner_path), gather_cases(data), []
    for name in json.loads(splits.read_text())["folds"][fold]["test"]:
        image, label = read_case(cases[name])
        coarse = read_volume(predictions / f"{name}.nii.gz").array
        normalised = normalise_intensities(image.array, CLIP_PERCENTILES)
        levels = refined_in_box(refiner, coarse, normalised, volume_layout(image), image.spacing)
        write_like(levels.astype(np.uint8), image, out / "predictions" / f"{name}.nii.gz")
        reference = np.where(np.isin(label.array, BODY_VALUES), label.array, 0)
        rows.append({"fold": fold, "case": name, "dataset": cases[name].dataset,
                     **level_map_metrics(levels, reference, label.array, image.spacing)})
        print(name, f"Dice {rows[-1]['dice']:.4f} body-wise {rows[-1]['body_dice']:.4f}", flush=True)
    (out / "evaluation.json").write_text(json.dumps({"cases": rows}, indent=1))


if __name__ == "__main__":
    model, splits, fold, predictions, out, *data = sys.argv[1:]
    main(Path(model), Path(splits), int(fold), Path(predictions), Path(out), [Path(p) for p in data])
