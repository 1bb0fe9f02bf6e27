"""A fold-0 refiner whose loss covers TAUGHT pixels around the annotated bodies instead of RADIUS (session 28, not
kept; the ``taught_radius`` argument it needs exists only in commit 61a74d5):

    python reports/levels/refine/train_taught.py 8 runs/refine-taught8/fold_0
"""

import json
import sys
from pathlib import Path

import torch

from saunet.crossval import gather_cases
from saunet.refiner_training import train_refiner

torch.set_num_threads(2)
cases = gather_cases([Path("../shared/data/lumbar-t2"), Path("../shared/data/lumbar-water-fat")])
names = json.loads(Path("reports/levels/cv60-prior/splits.json").read_text())["folds"][0]["train"]
print(train_refiner([cases[n] for n in names], 3000, Path(sys.argv[2]), 0, progress=False, taught_radius=int(sys.argv[1])))
