"""refine.py with two refiners' body logits averaged (session 33): REFINER is 'A.onnx+B.onnx', everything else as
`saunet segment` refines.

    python reports/levels/refine/pair/pair.py runs/refine-cli/fold_0/refiner.onnx+runs/refine-uniform-s1/fold_0/refiner.onnx \
        reports/levels/cv60-prior/splits.json 0 runs/fine-zoom2/sau-net/fold_0/predictions runs/pair/f0 \
        ../shared/data/lumbar-t2 ../shared/data/lumbar-water-fat
"""

import runpy
import sys

import numpy as np

import saunet.refinement as refinement

single = refinement.OutlineRefiner


class Averaged:
    """The members' mean body logits, called as one refiner."""

    def __init__(self, paths):
        self.members = [single(path) for path in str(paths).split("+")]

    def __call__(self, slices: np.ndarray) -> np.ndarray:
        return np.mean([member(slices) for member in self.members], axis=0)


refinement.OutlineRefiner = Averaged
sys.argv = ["refine.py", *sys.argv[1:]]
runpy.run_path("reports/levels/refine/refine.py", run_name="__main__")
