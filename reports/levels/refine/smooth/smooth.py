"""refine.py with the refiner's body logits smoothed along the slice axis (session 32, not kept): a Gaussian of SIGMA
mm over the bodies' slices (edge slices repeated), everything else as `saunet segment` refines.

    python reports/levels/refine/smooth/smooth.py 1 runs/refine-cli/fold_0/refiner.onnx \
        reports/levels/cv60-prior/splits.json 0 runs/fine-zoom2/sau-net/fold_0/predictions runs/smooth1/f0 \
        ../shared/data/lumbar-t2 ../shared/data/lumbar-water-fat
    # folds 1 and 2 as refine.py's (README), then evaluation.json copied to sigma<SIGMA>mm-fold<k>.json
"""

import runpy
import sys

import numpy as np
from scipy import ndimage

import saunet.inference as inference
import saunet.refinement as refinement

SIGMA_MM = float(sys.argv.pop(1))
slice_mm = {}  # the scan's slice spacing, which refine() is not given
unsmoothed_logits, unsmoothed_in_box = refinement.body_logits, inference.refined_in_box


def smoothed_logits(refiner, image, region, pixel_mm):
    logits = unsmoothed_logits(refiner, image, region, pixel_mm)
    occupied = np.flatnonzero(region.any((1, 2)))
    if len(occupied):
        box = slice(occupied[0], occupied[-1] + 1)
        logits[box] = ndimage.gaussian_filter1d(logits[box], SIGMA_MM / slice_mm["mm"], axis=0, mode="nearest",
                                                   truncate=3.0)
    return logits


def in_box(refiner, classes, normalised, layout, spacing):
    slice_mm["mm"] = layout.spacing(spacing)[0]
    return unsmoothed_in_box(refiner, classes, normalised, layout, spacing)


refinement.body_logits, inference.refined_in_box = smoothed_logits, in_box
sys.argv = ["refine.py", *sys.argv[1:]]
runpy.run_path("reports/levels/refine/refine.py", run_name="__main__")
