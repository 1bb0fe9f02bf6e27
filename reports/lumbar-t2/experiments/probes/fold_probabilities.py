"""Every finished fold of a CV run (argument 1: runs/<cv>/<model>) exported to ONNX from its checkpoint_last.pt
(the pipeline tests checkpoint_best.pt); each test case's probabilities, plain and averaged with the slice-order
mirror, saved as .npz in argument 2."""
import json, subprocess, sys, numpy as np
from pathlib import Path
from saunet.inference import Segmenter, predict_logits, sigmoid, SLICE_HALO
from saunet.imageio import read_volume
root = Path(sys.argv[1]); out = Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
splits = json.load(open("reports/lumbar-t2/splits.json"))["folds"]
for f in [f for f in splits if (root / f"fold_{f['fold']}/evaluation.json").exists()]:
    k = f["fold"]; onnx = out / f"fold_{k}.onnx"
    if not onnx.exists():
        subprocess.run([".venv/bin/saunet", "export", "--model", str(root / f"fold_{k}/checkpoint_last.pt"), "--onnx", str(onnx)], check=True)
    seg = Segmenter(onnx)
    for case in f["test"]:
        vol = read_volume(Path(f"../shared/data/lumbar-t2/imagesTr/{case}_0000.nii.gz"))
        from saunet.imageio import sagittal_axis; axis = seg.slice_axis if seg.slice_axis is not None else sagittal_axis(vol)
        grid = seg.preprocessor.grid(vol.array.shape, vol.spacing, axis)
        image = seg.preprocessor.image(vol.array, grid)[None, None]
        halo = SLICE_HALO.get(seg.model_name)
        plain = predict_logits(seg.model, image, halo, seg.chunk_slices)[0]
        mirrored = predict_logits(seg.model, np.ascontiguousarray(image[:, :, ::-1]), halo, seg.chunk_slices)[0][:, ::-1]
        p_plain = seg.preprocessor.inverse(sigmoid(plain), grid)[0]
        p_tta = seg.preprocessor.inverse((sigmoid(plain) + sigmoid(np.ascontiguousarray(mirrored))) / 2, grid)[0]
        np.savez_compressed(out / f"{case}.npz", plain=p_plain.astype(np.float16), tta=p_tta.astype(np.float16), spacing=vol.spacing)
        print(k, case, flush=True)
