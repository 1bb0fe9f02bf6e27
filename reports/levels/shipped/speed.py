"""`saunet segment` of one lumbar-t2 scan, whole process, with the shipped level model against a stock MONAI
2D U-Net forward over the same slices: the benchmark's own paired measurement (``paired_ratios``' first row),
7 rounds alternating the two in warm processes.

    python reports/levels/shipped/speed.py ../shared/data/lumbar-t2/imagesTr/lumbar_02_0000.nii.gz [MODEL ...]

MODEL: another model to segment with (a checkpoint or ONNX export; several: an ensemble; default the shipped one).
"""

import json
import sys
from pathlib import Path

from saunet.experiments.benchmark import STOCK_UNET2D, InferenceWorker, paired_seconds, segment_process_seconds
from saunet.imageio import read_volume
from saunet.orientation import volume_layout

scan = Path(sys.argv[1])
models = [Path(path) for path in sys.argv[2:]]
volume = read_volume(scan)
slices = volume.array.shape[volume_layout(volume).slice_axis]
stock = InferenceWorker("unet2d", (slices, 304, 304), model_kwargs={"features": STOCK_UNET2D})
try:
    result = paired_seconds(lambda: segment_process_seconds(scan, models, repeats=1), stock, 7)
finally:
    stock.close()
print(json.dumps(result))
