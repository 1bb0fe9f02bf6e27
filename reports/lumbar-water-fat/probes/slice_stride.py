"""Probe: does the shipped model do better on 1 mm slices when its attention's neighbours are taken 2 slices
apart (each parity of slices segmented as its own 2 mm stack, then interleaved)? Usage:
python reports/lumbar-water-fat/probes/slice_stride.py ../shared/data/lumbar-water-fat 8"""

import sys
from pathlib import Path

import numpy as np

from saunet.datasets import list_cases, read_case
from saunet.evaluation import case_metrics
from saunet.inference import CHUNK_SLICES, Segmenter, predict_logits
from saunet.orientation import volume_layout
from saunet.postprocessing import clean_mask

segmenter = Segmenter()
rows = []
for case in list_cases(Path(sys.argv[1]))[: int(sys.argv[2])]:
    image, label = read_case(case)
    grid = segmenter.preprocessor.grid(image.array.shape, image.spacing, volume_layout(image))
    net = segmenter.preprocessor.image(image.array, grid)[None, None]
    run = lambda x: predict_logits(segmenter.models[0], np.ascontiguousarray(x), segmenter.models[0].slice_halo, CHUNK_SLICES)  # noqa: E731
    logits = {1: run(net)}
    strided = np.empty_like(logits[1])
    for phase in (0, 1):
        strided[:, :, phase::2] = run(net[:, :, phase::2])
    logits[2] = strided
    row = [case.name]
    for stride in (1, 2):
        probs = segmenter.preprocessor.inverse(segmenter.label_map.probabilities(logits[stride][0]), grid)
        mask = clean_mask(probs[0] > 0.5, image.spacing, 1000.0, segmenter.postprocessing.max_components)
        m = case_metrics(mask, label.array > 0, image.spacing)
        row += [m["dice"], m["hd95"]]
    rows.append(row)
    print(*row, flush=True)
means = np.array([r[1:] for r in rows], dtype=float).mean(0)
print("mean Dice / HD95, stride 1: %.4f / %.2f; stride 2: %.4f / %.2f" % tuple(means))
