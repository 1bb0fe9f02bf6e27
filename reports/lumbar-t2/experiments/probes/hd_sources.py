"""Per test case of a CV run (argument: runs/<cv>/<model>): where the Hausdorff distance comes from; the
farthest predicted-surface point from the reference (FPmax) and reference point from the prediction (FNmax),
with their voxel indices (sagittal slice first), and the slices each mask spans."""
import sys, glob, numpy as np, nibabel as nib
from scipy import ndimage as ndi
root = sys.argv[1]
ref_dir = "../shared/data/lumbar-t2/labelsTr"
def surface(m):
    return m & ~ndi.binary_erosion(m)
for p in sorted(glob.glob(f"{root}/fold_*/predictions/*.nii.gz")):
    name = p.split("/")[-1]
    ref_img = nib.load(f"{ref_dir}/{name}")
    ref = ref_img.get_fdata() > 0; pred = nib.load(p).get_fdata() > 0
    sp = np.abs(np.diag(ref_img.affine)[:3])
    d_to_ref = ndi.distance_transform_edt(~surface(ref), sampling=sp)
    d_to_pred = ndi.distance_transform_edt(~surface(pred), sampling=sp)
    sp_pred = surface(pred); sp_ref = surface(ref)
    fp = d_to_ref[sp_pred]; fn = d_to_pred[sp_ref]
    ifp = np.argwhere(sp_pred)[fp.argmax()]; ifn = np.argwhere(sp_ref)[fn.argmax()]
    ref_slices = np.where(ref.any((1, 2)))[0]; pred_slices = np.where(pred.any((1, 2)))[0]
    ncomp = ndi.label(pred)[1]
    print(f"{name[:9]} HD {max(fp.max(), fn.max()):5.1f} FPmax {fp.max():5.1f} at {ifp} FNmax {fn.max():5.1f} at {ifn} "
          f"ref slices {ref_slices.min()}-{ref_slices.max()} pred {pred_slices.min()}-{pred_slices.max()} comps {ncomp} "
          f"FP95 {np.percentile(fp,95):.1f} FN95 {np.percentile(fn,95):.1f}")
