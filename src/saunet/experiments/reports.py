"""Report writing: Markdown tables shaped like the paper's and PNG figures (overlays, curves, box plots)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from saunet.evaluation import METRICS, summarise
from saunet.files import atomic_path

LABELS = {"dice": "Dice (%)", "jaccard": "Jaccard (%)", "precision": "Precision (%)", "recall": "Recall (%)",
          "hd": "HD (mm)", "hd95": "HD95 (mm)", "assd": "ASSD (mm)", "body_dice": "body-wise Dice (%)",
          "bodies_found": "bodies found (%)", "bodies_named": "bodies named (%)"}
PERCENT = {"dice", "jaccard", "precision", "recall", "body_dice", "bodies_found", "bodies_named"}


def saved_cases(path: str | Path) -> list[dict]:
    """The per-case rows of a saved results file: a CV report's ``cv.json`` or a script's ``{"cases": [...]}``, or a
    bare list of rows (a fold's ``evaluation.json``)."""
    saved = json.loads(Path(path).read_text())
    return saved["cases"] if isinstance(saved, dict) else saved


def mean_std(stats: dict, metric: str) -> str:
    mean, std = stats["mean"], stats["std"]
    if math.isnan(mean):
        return "–"
    if math.isinf(mean):
        return "inf"
    scale = 100 if metric in PERCENT else 1
    return f"{mean * scale:.2f} ± {std * scale:.2f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def metrics_table(rows: list[dict], group_key: str = "model", groups: list[str] | None = None,
                  metrics=METRICS) -> str:
    """Table 1 / 3 / 4 of the paper: one row per group (model), mean ± std of every metric over cases."""
    groups = groups or list(dict.fromkeys(r[group_key] for r in rows))
    body = []
    for group in groups:
        summary = summarise([r for r in rows if r[group_key] == group], metrics)
        n = max(s["n"] for s in summary.values())
        body.append([group, str(n)] + [mean_std(summary[m], m) for m in metrics])
    return markdown_table([group_key.capitalize(), "cases"] + [LABELS.get(m, m) for m in metrics], body)


def paired_table(rows: list[dict], first: str, second: str, metrics=("dice", "hd", "hd95")) -> str:
    """Per-case differences ``first`` - ``second`` on the cases both models have: mean ± std, how often
    ``first`` is better, and the two-sided Wilcoxon signed-rank p-value."""
    from scipy.stats import wilcoxon

    by_case = {m: {r["case"]: r for r in rows if r["model"] == m} for m in (first, second)}
    cases = sorted(set(by_case[first]) & set(by_case[second]))
    body = []
    for metric in metrics:
        pairs = [(by_case[first][c][metric], by_case[second][c][metric]) for c in cases]
        diffs = np.array([a - b for a, b in pairs if a is not None and b is not None and math.isfinite(a - b)])
        if len(diffs) == 0:
            continue
        better = int((diffs > 0).sum() if metric in PERCENT else (diffs < 0).sum())
        p_value = f"{wilcoxon(diffs).pvalue:.3f}" if np.any(diffs != 0) else "–"
        scale = 100 if metric in PERCENT else 1
        body.append([LABELS.get(metric, metric), f"{diffs.mean() * scale:+.2f} ± {diffs.std() * scale:.2f}",
                     f"{better} of {len(diffs)}", p_value])
    return markdown_table(["Metric", f"{first} − {second} per case", f"{first} better", "Wilcoxon p"], body)


def comparison_by_dataset(rows: list[dict], before: str, after: str, metrics) -> str:
    """Per data set: how many scans ``after`` changed (Dice), the metrics of both and ``after`` - ``before``
    paired per case; ``rows`` hold each case's ``before`` and ``after`` rows one after the other."""
    parts = []
    for dataset in dict.fromkeys(row["dataset"] for row in rows):
        of_set = [row for row in rows if row["dataset"] == dataset]
        changed = sum(a["dice"] != b["dice"] for a, b in zip(of_set[::2], of_set[1::2]))
        parts.append(f"### {dataset} ({changed} of {len(of_set) // 2} scans changed)\n\n"
                     f"{metrics_table(of_set, 'model', [before, after], metrics)}\n\n"
                     f"{paired_table(of_set, after, before, metrics)}\n")
    return "\n".join(parts)


def runs_by_dataset(rows: list[dict], runs: list[str], metrics, heading: str = "{dataset}") -> str:
    """Per data set (``heading`` names it): the metrics of each of ``runs`` (the rows' ``model``), then each run
    after the first against the first, paired per case."""
    first, *others = runs
    parts = []
    for dataset in dict.fromkeys(row["dataset"] for row in rows):
        of_set = [row for row in rows if row["dataset"] == dataset]
        parts += [f"### {heading.format(dataset=dataset)}\n\n{metrics_table(of_set, 'model', runs, metrics)}\n",
                  *(f"{paired_table(of_set, other, first, metrics)}\n" for other in others)]
    return "\n".join(parts)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    _pyplot().close(fig)
    return path


def sagittal_view(volume, array: np.ndarray) -> np.ndarray:
    """``array`` on ``volume``'s grid as (D, rows, cols) for display: sagittal slices first, superior at the
    top and anterior on the left, whatever the axis order and orientation of the file."""
    from saunet.orientation import volume_layout

    canonical = volume_layout(volume).to_canonical(array)  # (slices, towards superior, towards posterior)
    return np.ascontiguousarray(canonical[:, ::-1])


def overlay_slices(reference: np.ndarray, prediction: np.ndarray | None, count: int = 3) -> list[int]:
    """Slices worth looking at: the one with the most reference (mid-sagittal), the one with the most false
    positive voxels of ``prediction`` (where a Hausdorff distance is usually set) and the one with the most
    errors of either kind; then further slices by reference area."""
    per_slice = lambda mask: mask.reshape(mask.shape[0], -1).sum(1)  # noqa: E731
    ref = reference > 0
    area = per_slice(ref)
    chosen = [int(np.argmax(area))]
    if prediction is not None:
        pred = prediction > 0
        for errors in (per_slice(pred & ~ref), per_slice(pred ^ ref)):
            if errors.any():
                chosen.append(int(np.argmax(errors)))
    chosen += [int(s) for s in np.argsort(area)[::-1]]
    return sorted(list(dict.fromkeys(chosen))[:count])


def overlay_figure(image: np.ndarray, reference: np.ndarray, predictions: dict[str, np.ndarray], path: Path,
                   title: str = "", slices: list[int] | None = None) -> Path:
    """The paper's Figure 4: sagittal slices (rows) of each model (columns) with errors coloured.

    Arrays are display-ready (D, rows, cols), as :func:`sagittal_view` gives them.
    Green: true positive, red: false positive, blue: false negative.
    """
    plt = _pyplot()
    names = list(predictions)
    if slices is None:
        slices = overlay_slices(reference, predictions[names[0]] if names else None)
    fig, axes = plt.subplots(len(slices), len(names), figsize=(3.2 * len(names), 3.2 * len(slices)), squeeze=False)
    low, high = np.percentile(image, (1, 99))
    for r, s in enumerate(slices):
        for c, name in enumerate(names):
            ax = axes[r, c]
            pred, ref = predictions[name][s] > 0, reference[s] > 0
            rgba = np.zeros(pred.shape + (4,))
            rgba[pred & ref] = (0.1, 0.9, 0.1, 0.45)
            rgba[pred & ~ref] = (1.0, 0.1, 0.1, 0.8)
            rgba[~pred & ref] = (0.1, 0.4, 1.0, 0.8)
            ax.imshow(image[s], cmap="gray", vmin=low, vmax=high)
            ax.imshow(rgba)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name)
            if c == 0:
                ax.set_ylabel(f"slice {s}")
    fig.suptitle(title + "  (green: correct, red: false positive, blue: missed)", fontsize=9)
    return _save(fig, path)


def training_curves(histories: dict[str, list[dict]], path: Path) -> Path:
    """Training loss and validation Dice per epoch, one line per run."""
    plt = _pyplot()
    fig, (ax_loss, ax_dice) = plt.subplots(1, 2, figsize=(10, 3.5))
    for name, history in histories.items():
        epochs = [h["epoch"] for h in history]
        ax_loss.plot(epochs, [h["train_loss"] for h in history], label=name)
        ax_dice.plot(epochs, [h["val_dice"] for h in history], label=name)
    ax_loss.set(xlabel="epoch", ylabel="training loss")
    ax_dice.set(xlabel="epoch", ylabel="validation Dice")
    ax_dice.legend(fontsize=7)
    return _save(fig, path)


def box_plots(rows: list[dict], path: Path, metrics=("dice", "hd95", "hd"), group_key: str = "model") -> Path:
    """Per-case distribution of each metric, one box per model."""
    plt = _pyplot()
    groups = list(dict.fromkeys(r[group_key] for r in rows))
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.5), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        data = [[r[metric] for r in rows if r[group_key] == g and r[metric] is not None and math.isfinite(r[metric])]
                for g in groups]
        ax.boxplot(data, tick_labels=groups)
        ax.set_title(LABELS.get(metric, metric))
        ax.tick_params(axis="x", labelrotation=30)
    return _save(fig, path)
