"""Each body's lateral end slices under a fifth of its largest slice dropped from the three folds' saved refined
maps, scored as refine.py scores (session 31). First run with its own copy of the rule, which now lives in
saunet.postprocessing.trimmed_lateral_ends and is imported from there (the same maps: fold 2's lumbar_16 and
waterfat_44 through refine.py agree to the last digit).

    python reports/levels/refine/three-folds-trim/trim_saved.py runs/twopass/f0-pass1/predictions \
        runs/refine-f1/eval/predictions runs/refine-f2/eval/predictions reports/levels/refine/three-folds-trim/trimmed.json
"""
import json
import sys
from pathlib import Path

import numpy as np

from saunet.crossval import gather_cases
from saunet.datasets import read_case
from saunet.evaluation import level_map_metrics
from saunet.imageio import read_volume
from saunet.orientation import volume_layout
from saunet.postprocessing import trimmed_lateral_ends as trimmed
from saunet.refiner_training import BODY_VALUES

splits = json.loads(Path("reports/levels/cv60-prior/splits.json").read_text())["folds"]
cases = gather_cases([Path("../shared/data/lumbar-t2"), Path("../shared/data/lumbar-water-fat")])
rows = []
for fold, pred_dir in enumerate(sys.argv[1:4]):
    for name in splits[fold]["test"]:
        image, label = read_case(cases[name])
        layout = volume_layout(image)
        levels = read_volume(Path(pred_dir) / f"{name}.nii.gz").array
        levels = layout.from_canonical(trimmed(layout.to_canonical(levels)))
        reference = np.where(np.isin(label.array, BODY_VALUES), label.array, 0)
        rows.append({"fold": fold, "case": name, "dataset": cases[name].dataset,
                     **level_map_metrics(levels, reference, label.array, image.spacing)})
        print(name, f"{rows[-1]['hd']:.2f}", flush=True)
Path(sys.argv[4]).write_text(json.dumps({"cases": rows}, indent=1))
