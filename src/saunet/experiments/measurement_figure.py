"""The figure of docs/measurements.md: where each height is read, drawn from the measurement code itself on a
phantom of a normal body above a wedged one.

    python -m saunet.experiments.measurement_figure docs/measurements.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from saunet.measurement import WorldGrid, body_frame, disc_heights, mean_frame, measure_levels, plane_samples, reading_positions
from saunet.orientation import direction_from_code


def two_bodies(spacing=(3.0, 0.5, 0.5), field=110.0):
    """L1 (26 mm, tilted 8 degrees) above a wedged L2 (anterior 15, posterior 26 mm), centres 34 mm apart."""
    shape = tuple(int(field / s) for s in spacing)
    direction = direction_from_code("PSR")  # numpy axes: right, superior, posterior
    to_world = direction[:, ::-1] * np.asarray(spacing)
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
    world = (index - np.array(shape) / 2) @ to_world.T
    t = np.radians(8.0)
    a = -(world[:, 1] * np.cos(t) - world[:, 2] * np.sin(t))
    s = world[:, 1] * np.sin(t) + world[:, 2] * np.cos(t)
    labels = np.zeros(len(index), np.uint8)
    inside = (np.abs(a) <= 17) & (np.abs(world[:, 0]) <= 20)
    labels[inside & (np.abs(s - 17) <= 13)] = 3
    height = 26 + (15 - 26) * (a + 17) / 34
    labels[inside & (np.abs(s + 17) <= height / 2)] = 4
    origin = tuple(-(np.array(shape) / 2) @ to_world.T)
    return labels.reshape(shape), spacing, direction, origin


def draw(path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, spacing, direction, origin = two_bodies()
    grid = WorldGrid(labels.shape, spacing, direction, origin)
    rows = {r.name: r for r in measure_levels(labels, spacing, direction, origin)}
    frames = {v: body_frame(grid.positions(labels == v)) for v in (3, 4)}
    disc = mean_frame(frames[3], frames[4])
    points, ap, cc = plane_samples(disc, 35.0, 45.0, 0.0)
    plane = np.where(grid.lookup(labels == 3, points), 1, 0) + np.where(grid.lookup(labels == 4, points), 2, 0)
    figure, ax = plt.subplots(figsize=(6, 6.5))
    ax.imshow(plane.T[::-1], extent=(ap[0], ap[-1], cc[0], cc[-1]), cmap="Pastel1_r", interpolation="nearest")
    for value, name, colour in ((3, "L1", "tab:blue"), (4, "L2", "tab:red")):
        frame = frames[value]
        centre = ((frame.origin - disc.origin) @ disc.anterior, (frame.origin - disc.origin) @ disc.superior)
        body_points, body_ap, body_cc = plane_samples(frame, 30.0, 30.0, 0.0)
        occupied = body_ap[grid.lookup(labels == value, body_points).any(1)]
        for position, at in reading_positions(occupied.max(), occupied.min()).items():
            height = getattr(rows[name], f"{position}_height_mm")
            base = np.array(centre) + at * np.array([frame.anterior @ disc.anterior, frame.anterior @ disc.superior])
            axis = np.array([frame.superior @ disc.anterior, frame.superior @ disc.superior])
            ends = np.array([base - axis * height / 2, base + axis * height / 2])
            ax.plot(ends[:, 0], ends[:, 1], color=colour, lw=2)
            ax.text(*(ends[1] + axis * 1.5), f"{position[0].upper()} {height:.1f}", color=colour, fontsize=8,
                    ha="center")
        ax.annotate("", xy=centre + 12 * np.array([frame.superior @ disc.anterior, frame.superior @ disc.superior]),
                    xytext=centre, arrowprops={"arrowstyle": "->", "color": "k"})
    gaps = disc_heights(grid, labels == 3, labels == 4, disc, 30.0)
    ax.text(0, -44, "disc L1/L2 (mm): " + ", ".join(f"{k} {v:.1f}" for k, v in gaps.items()), ha="center", fontsize=8)
    ax.set_xlabel("antero-posterior (mm, anterior to the right)")
    ax.set_ylabel("cranio-caudal (mm)")
    ax.set_title("Heights in each body's mid-sagittal plane: A, M, P (mm)", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path


if __name__ == "__main__":
    print(draw(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/measurements.png")))
