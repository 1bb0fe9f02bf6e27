"""HD floor of the 1.875 mm grid: each reference mask, trained-label style (nearest) and ideal soft (area),
sent to the network grid and back (bilinear, threshold 0.5)."""
import glob, numpy as np
from pathlib import Path
from saunet.imageio import read_volume, sagittal_axis
from saunet.preprocessing import Preprocessor, PreprocessingSettings, to_slice_first, resize_in_plane
from saunet.evaluation import case_metrics
pre = Preprocessor(PreprocessingSettings(in_plane_spacing=1.875))
res = {"nearest": [], "area": []}
for p in sorted(glob.glob("../shared/data/lumbar-t2/labelsTr/*.nii.gz")):
    ref = read_volume(Path(p)); m = (ref.array > 0)
    grid = pre.grid(m.shape, ref.spacing, sagittal_axis(ref))
    near = pre.label(m.astype(np.float32), grid)
    soft = resize_in_plane(to_slice_first(m.astype(np.float32), grid.slice_axis), grid.network_shape[1:], "image")
    for k, net in (("nearest", near), ("area", soft)):
        back = pre.inverse(net[None].astype(np.float32), grid)[0] > 0.5
        r = case_metrics(back, m, ref.spacing); res[k].append((r["dice"], r["hd"], r["hd95"]))
for k, v in res.items():
    a = np.array(v); print(k, "Dice %.4f HD %.2f (max %.2f) HD95 %.2f" % (a[:,0].mean(), a[:,1].mean(), a[:,1].max(), a[:,2].mean()))
