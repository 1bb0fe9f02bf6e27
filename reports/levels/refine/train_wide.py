"""A fold-0 refiner of other widths (session 28): the shipped recipe with MONAI BasicUNet features FEATURES.

    python reports/levels/refine/train_wide.py 16,32,64,128,256,16 runs/refine-wide/fold_0
"""

import json
import sys
from pathlib import Path

import torch

from saunet import refiner_training
from saunet.crossval import gather_cases

torch.set_num_threads(2)
refiner_training.FEATURES = tuple(int(n) for n in sys.argv[1].split(","))  # outline_net reads it at call time
cases = gather_cases([Path("../shared/data/lumbar-t2"), Path("../shared/data/lumbar-water-fat")])
names = json.loads(Path("reports/levels/cv60-prior/splits.json").read_text())["folds"][0]["train"]
print(refiner_training.train_refiner([cases[n] for n in names], 3000, Path(sys.argv[2]), 0, progress=False))
