"""Mid-sagittal slices of one scan as training sees them under --appearance (saunet.training.vary_appearance):
the original, the first changed draws of a seeded generator, and, last, the mid-sagittal slice of a scan of
another contrast (``--other``), normalised alike.

    python reports/levels/cross-site/appearance_figure.py ../shared/data/lumbar-t2/imagesTr/lumbar_02_0000.nii.gz \
        reports/levels/cross-site/appearance.png --other ../shared/data/lumbar-water-fat/imagesTr/waterfat_02_0000.nii.gz
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from saunet.imageio import read_volume  # noqa: E402
from saunet.orientation import volume_layout  # noqa: E402
from saunet.preprocessing import PreprocessingSettings, Preprocessor  # noqa: E402
from saunet.training import appearance_transforms, vary_appearance  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("scan")
parser.add_argument("out")
parser.add_argument("--other", help="a scan of another contrast, shown last")
parser.add_argument("--shown", type=int, default=7, help="changed draws shown beside the original")
args = parser.parse_args()

preprocessor = Preprocessor(PreprocessingSettings())


def network_slices(path: str) -> np.ndarray:
    volume = read_volume(path)
    return preprocessor.image(volume.array, preprocessor.grid(volume.array.shape, volume.spacing, volume_layout(volume)))


image = network_slices(args.scan)
middle = image.shape[0] // 2
stack = torch.from_numpy(np.ascontiguousarray(image[middle - 1:middle + 2]))[None, None]
rng, transforms, shown = np.random.default_rng(0), appearance_transforms(), []
while len(shown) < args.shown:
    varied = vary_appearance(stack, rng, transforms)
    if not torch.allclose(varied, stack, atol=1e-3):
        shown.append(varied[0, 0, 1].numpy())
panels, titles = [image[middle], *shown], ["original", *(f"draw {i + 1}" for i in range(len(shown)))]
if args.other:
    other = network_slices(args.other)
    panels, titles = panels + [other[other.shape[0] // 2]], titles + [Path(args.other).name.split("_0000")[0]]
figure, axes = plt.subplots(1, len(panels), figsize=(2.2 * len(panels), 2.6))
low, high = np.percentile(image[middle], [1, 99])
for ax, panel, title in zip(axes, panels, titles):
    ax.imshow(panel, cmap="gray", vmin=low, vmax=high)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
figure.tight_layout()
figure.savefig(args.out, dpi=90)
print(f"wrote {args.out}")
