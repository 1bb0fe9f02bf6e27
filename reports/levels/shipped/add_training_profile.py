"""One-off: store the training profile in the shipped level model's checkpoint.

The run (`saunet train ... --out runs/shipped-levels`) started before training recorded a
``training_profile``; this computes it with the same function training now calls
(`saunet.quality.training_profile`), over the cases that run trained on: both data sets in `list_cases` order,
less the one drawn for validation by `saunet train --seed 0 --val 1`.

    python reports/levels/shipped/add_training_profile.py runs/shipped-levels/checkpoint_last.pt OUT.pt \
        ../shared/data/lumbar-t2 ../shared/data/lumbar-water-fat
"""

import sys

import numpy as np

from saunet.checkpoints import Checkpoint
from saunet.datasets import list_cases
from saunet.quality import training_profile

source, target, *data = sys.argv[1:]
cases = [case for folder in data for case in list_cases(folder)]
order = np.random.default_rng(0).permutation(len(cases))  # as cmd_train draws its validation case
trained = [cases[i] for i in order[1:]]
checkpoint = Checkpoint.load(source)
checkpoint.training_profile = training_profile(trained).to_dict()
checkpoint.save(target, with_optimizer=False)
print(f"validation case {cases[order[0]].name}; profile of {len(trained)} scans: {checkpoint.training_profile}")
