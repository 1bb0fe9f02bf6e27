"""The outline refiner's decision threshold moved (session 41): `saunet segment`'s whole path on cross-validated
folds (qc_calibration, its arguments after the threshold) with a voxel kept where the refiner's body logit exceeds
THRESHOLD instead of 0 (``saunet.refinement.refine``), for the ensemble's refiner and the fallback's alike.

    python reports/levels/refine/threshold/threshold.py 0.5 --cv runs/gpu-g16 --member runs/gpu-g16s1 \
        --fallback runs/fb37all --fallback runs/fb37all-s1 --model sau-net --data ../shared/data/lumbar-t2 \
        --data ../shared/data/lumbar-water-fat --epochs 56 --refine --contrast original --out runs/bias41-p05
"""

import sys

import saunet.refinement as refinement
from saunet.experiments import qc_calibration

threshold = float(sys.argv[1])
unshifted = refinement.body_logits


def shifted(*args, **kwargs):
    """The refiner's logits less the threshold: ``refine`` keeps what is above 0 within the bodies' band, and the
    band lies inside the box where the logits are decided (0 outside it is never read)."""
    return unshifted(*args, **kwargs) - threshold


refinement.body_logits = shifted
qc_calibration.main(sys.argv[2:])
