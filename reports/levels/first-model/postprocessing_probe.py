"""Body-wise scores of a level model's held-out predictions without post-processing (the decoded labels) and
with the level post-processing as committed (assign_levels); prints each scan's count of foreground components
and of level regions. The README's other forms were earlier states of assign_levels.

    python reports/levels/first-model/postprocessing_probe.py CHECKPOINT TEST_FOLDER...
"""

import sys
from pathlib import Path

import numpy as np

from saunet.datasets import list_cases, read_case
from saunet.evaluation import body_metrics
from saunet.inference import Segmenter
from saunet.postprocessing import label_components, level_regions

segmenter = Segmenter(sys.argv[1])


for folder in sys.argv[2:]:
    rows = {"raw": [], "assign_levels": []}
    for case in list_cases(Path(folder)):
        image, label = read_case(case)
        result = segmenter.segment(image)
        classes = segmenter.label_map.apply(result.raw_labels)
        rows["raw"].append(body_metrics(result.raw_labels, label.array))
        rows["assign_levels"].append(body_metrics(result.labels, label.array))
        parts = level_regions(classes)
        print(case.name, "foreground components:", int(label_components(classes > 0).max()),
              "per-level regions:", int(parts.max()), flush=True)
    for name, scores in rows.items():
        print(Path(folder).name, name, {k: round(float(np.mean([s[k] for s in scores])), 3)
                                        for k in ("body_dice", "bodies_found", "bodies_named")})
