"""Where the level network's training crops begin: per scan, the share of 2000 crops drawn as training draws them
(`training.sample_window`, the shipped recipe, seed 0) that begin above L5's lowest row (no sacrum in the crop) or
within L5, with and without ``--field-edges``.

    python reports/levels/field-of-view/training_crops.py ../shared/data/lumbar-t2 ../shared/data/lumbar-water-fat \
        lumbar_02 lumbar_07 lumbar_13 waterfat_02 waterfat_12 waterfat_32 > reports/levels/field-of-view/training-crops.md
"""

import sys
from pathlib import Path

import numpy as np

from saunet.config import TrainConfig
from saunet.crossval import gather_cases
from saunet.training import prepare_cases, sample_window

DRAWS = 2000


def shares(case, config: TrainConfig) -> tuple[float, float]:
    """(share of crops beginning above L5's lowest row, share beginning within L5)."""
    rng = np.random.default_rng(0)
    l5 = np.flatnonzero((case.label == 7).any((0, 2)))  # class 7 is L5; canonical rows grow towards superior
    starts = np.array([sample_window(case, config, rng)[3][0].start for _ in range(DRAWS)])
    return float(np.mean(starts > l5.max())), float(np.mean((starts > l5.min()) & (starts <= l5.max())))


def main() -> None:
    folders = [Path(a) for a in sys.argv[1:] if Path(a).is_dir()]
    names = [a for a in sys.argv[1:] if not Path(a).is_dir()]
    cases = gather_cases(folders)
    recipes = {"shipped": TrainConfig(classes=(1, 2, 3, 4, 5, 6, 7)),
               "--field-edges 0.3": TrainConfig(classes=(1, 2, 3, 4, 5, 6, 7), field_edges=0.3)}
    prepared = prepare_cases([cases[n] for n in names], recipes["shipped"], progress=False)
    print(f"`python {' '.join(sys.argv)}`\n")
    print("| scan | network rows | L5's rows | " + " | ".join(f"{r}: above L5 / within L5" for r in recipes)
          + " |\n|---|---|---|" + "---|" * len(recipes))
    for case in prepared:
        l5 = np.flatnonzero((case.label == 7).any((0, 2)))
        cells = [" / ".join(f"{100 * s:.1f} %" for s in shares(case, config)) for config in recipes.values()]
        print(f"| {case.name} | {case.image.shape[1]} | {l5.min()}-{l5.max()} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
