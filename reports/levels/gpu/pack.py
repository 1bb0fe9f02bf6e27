"""Pack both data sets, prepared as training prepares them, for a training run on a lent GPU machine.

That machine has neither the data (../shared does not travel) nor SimpleITK and nibabel, and at most 64 MiB
travel with the working tree. So each case is prepared here exactly as ``saunet.training.prepare_cases`` does
(network grid, normalised intensities, level labels), its image stored as 8 bits between its own minimum and
maximum and the file xz-compressed (steps of 1/255 of the range, far below the augmentation's intensity changes), and the training
profile of each run's training cases computed here too (quality control needs the scans' native statistics).

    python reports/levels/gpu/pack.py --data ../shared/data/lumbar-t2 --data ../shared/data/lumbar-water-fat \
        --splits reports/levels/cv/splits.json --out .gpu
"""

from __future__ import annotations

import argparse
import io
import json
import lzma
from pathlib import Path

import numpy as np

from saunet.config import TrainConfig
from saunet.crossval import gather_cases
from saunet.quality import training_profile
from saunet.training import prepare_cases

SHIPPED_VALIDATION = ["waterfat_36"]  # the shipped model's held-out scan (docs/model-card.md)


def runs_of(splits: list[dict], names: list[str]) -> dict[str, dict]:
    """Training and validation cases of every run: the CV folds, and 'all' (every scan, as the shipped model)."""
    runs = {f"fold_{s['fold']}": {"train": s["train"], "val": s["val"]} for s in splits}
    runs["all"] = {"train": sorted(n for n in names if n not in SHIPPED_VALIDATION), "val": SHIPPED_VALIDATION}
    return runs


def quantised(image: np.ndarray) -> tuple[np.ndarray, float, float]:
    low, high = float(image.min()), float(image.max())
    return np.round((image - low) / max(high - low, 1e-6) * 255).astype(np.uint8), low, high


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, action="append", required=True)
    parser.add_argument("--splits", type=Path, required=True)
    parser.add_argument("--classes", default="1,2,3,4,5,6,7")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    config = TrainConfig(classes=tuple(int(c) for c in args.classes.split(",")))
    cases = gather_cases(args.data)
    splits = json.loads(args.splits.read_text())["folds"]
    arrays = {}
    for case in prepare_cases(list(cases.values()), config):
        image, low, high = quantised(case.image)
        arrays.update({f"{case.name}/image": image, f"{case.name}/label": case.label,
                       f"{case.name}/about": np.array([low, high, case.components, case.slice_mm]),
                       f"{case.name}/known": case.known, f"{case.name}/dataset": np.array(case.dataset)})
        if case.unannotated is not None:
            arrays[f"{case.name}/unannotated"] = case.unannotated
    args.out.mkdir(parents=True, exist_ok=True)
    packed = io.BytesIO()
    np.savez(packed, **arrays)
    (args.out / "cases.npz.xz").write_bytes(lzma.compress(packed.getvalue()))  # a third smaller than zip's deflate
    runs = runs_of(splits, sorted(cases))
    for run in runs.values():
        run["profile"] = training_profile([cases[n] for n in run["train"]]).to_dict()
    (args.out / "runs.json").write_text(json.dumps({"classes": list(config.classes), "runs": runs}, indent=1))
    print(f"{len(cases)} cases, {len(runs)} runs -> {args.out}: "
          f"{(args.out / 'cases.npz.xz').stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
