"""Hole filling (per sagittal slice, 3D) and a 2-pixel closing applied to a CV run's saved predictions
(argument: runs/<cv>/<model>); Dice, HD, HD95, precision, recall against the references."""
import sys, glob, numpy as np
from pathlib import Path
from scipy import ndimage as ndi
from saunet.imageio import read_volume, sagittal_axis
from saunet.evaluation import case_metrics
root = sys.argv[1]
variants = {
    "as is": lambda m, ax, sp: m,
    "fill 2D (sagittal)": lambda m, ax, sp: np.moveaxis(np.stack([ndi.binary_fill_holes(s) for s in np.moveaxis(m, ax, 0)]), 0, ax),
    "fill 3D": lambda m, ax, sp: ndi.binary_fill_holes(m),
    "close 2D r2px": lambda m, ax, sp: np.moveaxis(np.stack([ndi.binary_fill_holes(ndi.binary_closing(np.pad(s, 3), ndi.generate_binary_structure(2, 1), 2)[3:-3, 3:-3]) for s in np.moveaxis(m, ax, 0)]), 0, ax),
}
res = {k: [] for k in variants}
for p in sorted(glob.glob(f"{root}/fold_*/predictions/*.nii.gz")):
    pred = read_volume(Path(p)); name = Path(p).name
    ref = read_volume(Path(f"../shared/data/lumbar-t2/labelsTr/{name}"))
    ax = sagittal_axis(pred)
    for k, f in variants.items():
        m = f(pred.array > 0, ax, pred.spacing)
        r = case_metrics(m, ref.array > 0, pred.spacing); res[k].append((r["dice"], r["hd"], r["hd95"], r["precision"], r["recall"]))
for k, v in res.items():
    a = np.array(v); print(f"{k:22s} Dice {a[:,0].mean()*100:.2f} HD {a[:,1].mean():.2f} HD95 {a[:,2].mean():.2f} P {a[:,3].mean()*100:.2f} R {a[:,4].mean()*100:.2f}  HD per case {np.round(a[:,1],1)}")
