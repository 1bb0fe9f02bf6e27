"""Segmentation metrics and ``saunet evaluate``.

Overlap metrics (Dice, Jaccard, precision, recall) are counted directly; surface distances (Hausdorff,
its 95th percentile, average symmetric surface distance) in mm come from MONAI's surface-distance
functions, using the reference's voxel spacing, so the values agree with ``monai.metrics``.

Conventions for empty masks:
- both prediction and reference empty: every overlap metric is 1 and every distance 0 (nothing to find,
  nothing found);
- exactly one empty: Dice, Jaccard, recall and precision are 0 and the distances are infinite (written
  as ``inf`` in CSV and ``null`` in JSON).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from monai.metrics.utils import get_mask_edges, get_surface_distance

from saunet.errors import InputError
from saunet.imageio import case_id, is_image_file, read_volume, same_geometry
from saunet.labels import LEVELS, LabelMap

METRICS = ("dice", "jaccard", "precision", "recall", "hd", "hd95", "assd")


def overlap_metrics(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    pred, ref = pred.astype(bool), ref.astype(bool)
    tp = float(np.logical_and(pred, ref).sum())
    n_pred, n_ref = float(pred.sum()), float(ref.sum())
    if n_pred == 0 and n_ref == 0:
        return {"dice": 1.0, "jaccard": 1.0, "precision": 1.0, "recall": 1.0}
    return {
        "dice": 2 * tp / (n_pred + n_ref),
        "jaccard": tp / (n_pred + n_ref - tp),
        "precision": tp / n_pred if n_pred else 0.0,
        "recall": tp / n_ref if n_ref else 0.0,
    }


def surface_metrics(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> dict[str, float]:
    """Hausdorff distance, HD95 and ASSD in mm between the mask surfaces (MONAI's definitions)."""
    pred, ref = pred.astype(bool), ref.astype(bool)
    if not pred.any() and not ref.any():
        return {"hd": 0.0, "hd95": 0.0, "assd": 0.0}
    if not pred.any() or not ref.any():
        return {"hd": math.inf, "hd95": math.inf, "assd": math.inf}
    edges_pred, edges_ref = get_mask_edges(torch.from_numpy(pred), torch.from_numpy(ref), crop=True)
    spacing = tuple(float(s) for s in spacing)
    pred_to_ref = np.asarray(get_surface_distance(edges_pred, edges_ref, "euclidean", spacing), dtype=np.float64)
    ref_to_pred = np.asarray(get_surface_distance(edges_ref, edges_pred, "euclidean", spacing), dtype=np.float64)
    return {
        "hd": float(max(pred_to_ref.max(), ref_to_pred.max())),
        "hd95": float(max(np.percentile(pred_to_ref, 95), np.percentile(ref_to_pred, 95))),
        "assd": float((pred_to_ref.sum() + ref_to_pred.sum()) / (len(pred_to_ref) + len(ref_to_pred))),
    }


def case_metrics(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> dict[str, float]:
    """All metrics of one binary prediction against its reference."""
    return {**overlap_metrics(pred, ref), **surface_metrics(pred, ref, spacing)}


def label_metrics(pred: np.ndarray, ref: np.ndarray, spacing, classes: list[int] | None = None) -> dict[str, float]:
    """Binary metrics (any label > 0), and, for each value in ``classes``, metrics prefixed ``class<k>_``."""
    row = case_metrics(pred > 0, ref > 0, spacing)
    for k in classes or []:
        row.update({f"class{k}_{m}": v for m, v in case_metrics(pred == k, ref == k, spacing).items()})
    return row


BODY_METRICS = ("body_dice", "bodies_found", "bodies_named")
FOUND_DICE = 0.5  # a reference body counts as found when the predicted components overlapping it reach this Dice


def body_scores(pred: np.ndarray, ref: np.ndarray) -> list[tuple[int, float, int]]:
    """Per reference body (each label value of ``ref``): (its value, its body-wise Dice, the predicted label most
    frequent inside it, 0 for none). A predicted component is a connected region of one predicted label, so
    touching bodies of different levels stay apart, and it belongs to the reference body it overlaps most: a
    neighbour that grazes a body at their disc is scored against its own body, not this one too. Components
    that overlap no reference body (levels the reference leaves unannotated) belong to none."""
    from saunet.postprocessing import level_regions, present_values

    components = level_regions(pred)
    shape = (int(components.max()) + 1, int(ref.max()) + 1)
    pairs = components.ravel() * shape[1] + ref.ravel().astype(np.int64)
    overlap = np.bincount(pairs, minlength=shape[0] * shape[1]).reshape(shape)  # voxels per (component, body)
    overlap[:, 0] = 0
    owner = overlap.argmax(1)  # the reference body each component overlaps most (0: none)
    owner[0] = 0
    scores = []
    for value in (int(v) for v in present_values(ref)):
        body = ref == value
        votes = np.bincount(pred[body & (pred > 0)].astype(np.int64))
        scores.append((value, overlap_metrics((owner == value)[components], body)["dice"],
                       int(votes.argmax()) if votes.size else 0))
    return scores


def body_metrics(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Body-wise scores, how data sets with different protocols are compared (:func:`body_scores`): the mean
    body-wise Dice, the share of bodies found (Dice >= 0.5) and the share named correctly (the most frequent
    predicted label inside the body is the body's own; meaningful for level maps)."""
    scores = body_scores(pred, ref)
    if not scores:
        return {"body_dice": math.nan, "bodies_found": math.nan, "bodies_named": math.nan, "bodies": 0}
    return {"body_dice": float(np.mean([d for _, d, _ in scores])),
            "bodies_found": float(np.mean([d >= FOUND_DICE for _, d, _ in scores])),
            "bodies_named": float(np.mean([named == value for value, _, named in scores])), "bodies": len(scores)}


def level_map_metrics(labels: np.ndarray, label: np.ndarray, spacing: tuple[float, ...],
                      label_map: LabelMap = LabelMap(tuple(LEVELS))) -> dict[str, float]:
    """A level map's scores as ``saunet cv`` reports them: :func:`case_metrics` of its bodies and :func:`body_metrics`
    of its levels against the expert ``label``'s bodies, the values among ``label_map``'s classes (by default the
    level table's)."""
    bodies = label_map.apply(label) > 0
    return {**case_metrics(labels > 0, bodies, spacing), **body_metrics(labels, np.where(bodies, label, 0))}


def summarise(rows: list[dict], metrics=METRICS) -> dict[str, dict[str, float]]:
    """Mean and standard deviation of each metric (an infinite distance makes the mean infinite)."""
    summary = {}
    for m in metrics:
        values = np.array([r[m] for r in rows if r.get(m) is not None], dtype=np.float64)
        summary[m] = {"mean": float(values.mean()) if len(values) else math.nan,
                      "std": float(values.std()) if len(values) else math.nan, "n": int(len(values))}
    return summary


def pair_folders(pred_dir: Path, ref_dir: Path) -> list[tuple[str, Path, Path]]:
    """(case, prediction, reference) pairs matched by case name, ignoring an nnU-Net ``_0000`` suffix."""
    for folder in (pred_dir, ref_dir):
        if not folder.is_dir():
            raise InputError(folder, "no such folder")
    images = lambda d: {case_id(p): p for p in sorted(d.iterdir()) if is_image_file(p)}  # noqa: E731
    preds, refs = images(pred_dir), images(ref_dir)
    missing = sorted(set(refs) - set(preds))
    if missing:
        raise InputError(pred_dir, f"no prediction for {len(missing)} reference case(s): {', '.join(missing[:5])}")
    if not refs:
        raise InputError(ref_dir, "holds no reference images")
    return [(name, preds[name], refs[name]) for name in sorted(refs)]


def evaluate_pair(pred_path: Path, ref_path: Path, classes: list[int] | None = None,
                  per_body: bool = False, ref_labels: tuple[int, ...] | None = None) -> dict[str, float]:
    """Scores of a predicted label map against its reference (same grid); ``ref_labels``: the reference's values
    that are vertebral bodies (None: every value > 0), its other values (a sacrum, discs, the canal) left out."""
    pred, ref = read_volume(pred_path), read_volume(ref_path)
    mismatch = same_geometry(pred, ref)
    if mismatch:
        raise InputError(pred_path, f"geometry differs from the reference {ref_path.name}: {mismatch}")
    reference = ref.array if ref_labels is None else np.where(np.isin(ref.array, ref_labels), ref.array, 0)
    row = label_metrics(pred.array, reference, ref.spacing, classes)
    return {**row, **body_metrics(pred.array, reference)} if per_body else row


def evaluate_folders(pred_dir: Path, ref_dir: Path, progress: bool = True, per_body: bool = False,
                     ref_labels: tuple[int, ...] | None = None) -> list[dict]:
    from tqdm import tqdm

    rows = []
    for name, pred, ref in tqdm(pair_folders(pred_dir, ref_dir), desc="evaluating", disable=None if progress else True):
        rows.append({"case": name, **evaluate_pair(pred, ref, per_body=per_body, ref_labels=ref_labels)})
    return rows
