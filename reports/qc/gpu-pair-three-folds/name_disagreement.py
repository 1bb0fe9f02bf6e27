"""Session 35's probe: the members' disagreement on names alone (a member classing a body voxel as another level,
not as background) recorded beside the whole disagreement, on every row of a qc_calibration run.

    python reports/qc/gpu-pair-three-folds/name_disagreement.py --cv runs/gpu-g16 --member runs/gpu-g16s1 \
        --model sau-net --data ../shared/data/lumbar-t2 --data ../shared/data/lumbar-water-fat --epochs 56 \
        --refine --out runs/names35-g16

Each row's ``quality.statistics`` gains ``member_name_disagreement`` and ``refined``; ``judge_names.py`` judges the
rows both ways. No shipped code changes: the probe wraps two functions for this run only. It ran on the code of
fa37425 (``git worktree add /tmp/at fa37425``, run there); since 0905451 ``saunet segment`` and ``qc_calibration
--refine`` record ``member_name_disagreement`` of refined results themselves, and their rows judge the same way.
"""

import sys

import numpy as np

import saunet.inference as inference
from saunet.experiments import qc_calibration

last: dict = {}
whole_disagreement = inference.member_disagreement
segment_checked = inference.Segmenter.segment_checked


def recorded(member_classes: np.ndarray, mean_classes: np.ndarray) -> float:
    bodies = mean_classes > 0
    members, mean = member_classes[:, bodies], mean_classes[bodies]
    last["names"] = float(((members != mean) & (members > 0)).any(0).mean()) if bodies.any() else 1.0
    return whole_disagreement(member_classes, mean_classes)


def checked(self, *args, **kwargs):
    last.clear()
    result, verdict = segment_checked(self, *args, **kwargs)
    verdict.statistics.update(member_name_disagreement=last.get("names"), refined=result.unrefined_labels is not None)
    return result, verdict


inference.member_disagreement = recorded
inference.Segmenter.segment_checked = checked
qc_calibration.main(sys.argv[1:])
