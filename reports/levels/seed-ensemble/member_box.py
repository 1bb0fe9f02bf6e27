"""Does running an ensemble's later members only on a box around the first member's bodies change its
segmentation? Every CV test scan segmented by its fold's two seeds with the second member on every voxel, and on
boxes of several margins (slices, rows, columns of the network grid) around what the first decodes as a body. Per
configuration one JSON of per-case rows (compare.py reads them) with, per scan, the voxels whose post-processed
label differs from the whole-volume ensemble's, its members' disagreement, and the share of the volume the box holds.

    python reports/levels/seed-ensemble/member_box.py runs/both-base runs/both-seed1 --data ../shared/data/lumbar-t2 \
        ../shared/data/lumbar-water-fat --margins 3,32,32 --out runs/member-box
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from saunet import inference
from saunet.crossval import fold_checkpoints, gather_cases
from saunet.datasets import read_case
from saunet.evaluation import level_map_metrics
from saunet.inference import Segmenter, body_box, predict_logits
from saunet.orientation import volume_layout

EVERYWHERE = (10**6,) * 3


def margins(text: str) -> tuple[int, int, int]:
    return tuple(int(m) for m in text.split(","))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cv", type=Path)
    parser.add_argument("member", type=Path)
    parser.add_argument("--data", type=Path, nargs="+", required=True)
    parser.add_argument("--margins", type=margins, nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True)
    arguments = parser.parse_args()
    torch.set_num_threads(2)
    splits = json.loads((arguments.cv / "splits.json").read_text())["folds"]
    cases = gather_cases(arguments.data)
    configurations = {"everywhere": EVERYWHERE, **{"box " + ",".join(map(str, m)): m for m in arguments.margins}}
    rows = {name: [] for name in configurations}
    for fold, split in enumerate(splits):
        segmenter = Segmenter(fold_checkpoints(arguments.cv / "sau-net" / f"fold_{fold}", [arguments.member]))
        for case in split["test"]:
            image, label = read_case(cases[case])
            reference = segmenter.label_map.apply(label.array)
            layout = volume_layout(image, segmenter.slice_axis)
            grid = segmenter.preprocessor.grid(image.array.shape, image.spacing, layout)
            network_image = segmenter.preprocessor.image(image.array, grid)
            model = segmenter.models[0]
            first = predict_logits(model, network_image[None, None], model.slice_halo, segmenter.chunk_slices)[0]
            whole = None
            for name, margin in configurations.items():
                inference.MEMBER_MARGINS = margin
                result = segmenter.segment(image)
                whole = result.labels if whole is None else whole
                box = body_box(first, margin)
                rows[name].append({"case": case, "dataset": cases[case].dataset, "fold": fold,
                                   **level_map_metrics(result.labels, reference, label.array, label.spacing),
                                   "voxels_differing": int((result.labels != whole).sum()),
                                   "disagreement": result.disagreement,
                                   "box_share": float(np.prod([s.stop - s.start for s in box]) / np.prod(grid.network_shape))})
            print(case, {name: (r[-1]["voxels_differing"], round(r[-1]["box_share"], 3)) for name, r in rows.items()},
                  file=sys.stderr, flush=True)
    arguments.out.mkdir(parents=True, exist_ok=True)
    for name, saved in rows.items():
        summary = {"scans": len(saved), "scans_identical": sum(r["voxels_differing"] == 0 for r in saved),
                   "voxels_differing": sum(r["voxels_differing"] for r in saved),
                   "mean_box_share": float(np.mean([r["box_share"] for r in saved]))}
        (arguments.out / f"{name}.json").write_text(json.dumps({"command": " ".join(sys.argv), "summary": summary,
                                                                "cases": saved}, indent=1))
        print(name, json.dumps(summary))


if __name__ == "__main__":
    main()
