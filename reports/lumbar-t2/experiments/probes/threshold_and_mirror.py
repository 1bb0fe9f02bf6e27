"""Dice / HD / HD95 of saved fold probabilities (argument: the folder fold_probabilities.py wrote) at several
thresholds, plain and averaged with the slice-order mirror, with the pipeline's post-processing."""
import sys, glob, numpy as np
from pathlib import Path
from saunet.inference import clean_mask, MIN_COMPONENT_MM3
from saunet.imageio import read_volume
from saunet.evaluation import case_metrics
d = Path(sys.argv[1]); rows = {}
for f in sorted(d.glob("*.npz")):
    z = np.load(f); ref = read_volume(Path(f"../shared/data/lumbar-t2/labelsTr/{f.stem}.nii.gz"))
    sp = tuple(float(s) for s in z["spacing"])
    for kind in ("plain", "tta"):
        p = z[kind].astype(np.float32)
        for t in (0.3, 0.4, 0.5, 0.6, 0.7):
            m = clean_mask(p > t, sp, MIN_COMPONENT_MM3, 7)
            r = case_metrics(m, ref.array > 0, sp)
            rows.setdefault((kind, t), []).append((r["dice"], r["hd"], r["hd95"]))
for key, v in rows.items():
    a = np.array(v); print(key, len(a), "Dice %.4f HD %.2f HD95 %.2f" % tuple(a.mean(0)), "HD per case", np.round(a[:, 1], 1))
