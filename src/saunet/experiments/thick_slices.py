"""Thick slices: each fold's model on its test scans with only every k-th sagittal slice kept (about 4 mm
apart, as clinical scans from other centres), scored body-wise against the expert masks thinned alike. An
estimate for thick-slice scans of the same sites; another centre adds its own differences.

    python -m saunet.experiments.thick_slices --cv runs/cv-levels --model sau-net \
        --data ../shared/data/lumbar-t2 --data ../shared/data/lumbar-water-fat --out reports/levels/thick-slices
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from saunet.crossval import finished_folds, fold_checkpoints, gather_cases
from saunet.datasets import read_case
from saunet.evaluation import body_metrics, summarise
from saunet.experiments.qc_calibration import CONTRASTS, HELD_OUT, contrasts, fold_parser
from saunet.experiments.reports import markdown_table
from saunet.files import write_json, write_text
from saunet.imageio import Volume
from saunet.labels import LEVELS
from saunet.orientation import volume_layout
from saunet.quality import Verdict

TARGET_MM = 4.0
LEVEL_VALUES = {name: value for value, name in LEVELS.items()}


def sliced(volume: Volume, axis: int, kept: slice) -> Volume:
    """``volume`` with only the ``kept`` slices of numpy ``axis`` (a range, or every k-th), its spacing and origin
    following (as a scanner framing or spacing it so would write)."""
    index = [slice(None)] * 3
    index[axis] = kept
    itk_index = [slice(None)] * 3
    itk_index[2 - axis] = kept
    return Volume(np.ascontiguousarray(volume.array[tuple(index)]), volume.reference[tuple(itk_index)], volume.path)


def thinned(volume: Volume, axis: int, step: int) -> Volume:
    """Every ``step``-th slice along numpy ``axis``, the spacing and origin following (as a scanner would write)."""
    return sliced(volume, axis, slice(0, None, step))


def thick_copies(image: Volume, label: Volume) -> tuple[Volume, Volume, float]:
    """A scan and its expert mask with every k-th sagittal slice kept, k chosen for ~TARGET_MM, and that spacing."""
    axis = volume_layout(image).slice_axis
    step = max(1, round(TARGET_MM / image.spacing[axis]))
    return thinned(image, axis, step), thinned(label, axis, step), image.spacing[axis] * step


# A field of view that ends within the lumbar spine: cropped at the centre of a level (L5: no sacrum in view; L1:
# nothing above it), the part beyond it dropped (``direction``: the side dropped, +1 cranial, -1 caudal).
FIELD_CUTS = {"cut-below": (LEVEL_VALUES["L5"], -1), "cut-above": (LEVEL_VALUES["L1"], +1)}
VARIANTS = (*CONTRASTS, *HELD_OUT, "thick", *FIELD_CUTS)


def field_cut(image: Volume, label: Volume, level: int, direction: int) -> tuple[Volume, Volume]:
    """A scan and its expert mask cropped cranio-caudally at the centre of expert ``level``, the part on the
    ``direction`` side of it (+1 cranial, -1 caudal) dropped; unchanged if the mask lacks the level."""
    axis, towards_superior = volume_layout(image).superior
    where = np.nonzero(label.array == level)[axis]
    if not len(where):
        return image, label
    centre = int(round(where.mean()))
    dropped_above = direction * towards_superior > 0  # the dropped side lies at higher indices
    kept = slice(0, centre) if dropped_above else slice(centre, image.array.shape[axis])
    return sliced(image, axis, kept), sliced(label, axis, kept)


def scan_variant(image: Volume, label: Volume, kind: str) -> tuple[Volume, Volume]:
    """A scan and its expert mask as they are ("original"), at ~4 mm slices ("thick": :func:`thick_copies`), cropped
    within the lumbar spine (:data:`FIELD_CUTS`: :func:`field_cut`), or in a
    contrast no training scan has ("inverted", "T1-like" and the held-out ones:
    :func:`saunet.experiments.qc_calibration.contrasts`)."""
    if kind == "original":
        return image, label
    if kind == "thick":
        return thick_copies(image, label)[:2]
    if kind in FIELD_CUTS:
        return field_cut(image, label, *FIELD_CUTS[kind])
    return Volume(contrasts(image.array, (kind,))[kind].astype(np.float32), image.reference, image.path), label


def scored(segmenter, image: Volume, label: Volume, dataset: str) -> dict:
    """One scan segmented, assessed by quality control and scored body-wise against its expert mask."""
    result = segmenter.segment(image)
    return scored_labels(result.labels, segmenter.assess(image, result), label, dataset)


def scored_labels(labels: np.ndarray, verdict: Verdict, label: Volume, dataset: str) -> dict:
    """A label map of one scan with its quality-control verdict, scored body-wise against the expert mask."""
    return {"dataset": dataset, "verdict": verdict.verdict, "reasons": verdict.reasons,
            **body_metrics(labels, label.array)}


def run(cv: Path, model: str, data: list[Path], epochs: int, members: list[Path] = (), refine: bool = False) -> list[dict]:
    """Every finished fold's test scans thinned, segmented by the fold's model (with ``members``, its ensemble),
    with ``refine`` redrawn by the fold's outline refiner (``refiner.onnx`` in its folder), as ``saunet segment``."""
    from saunet.inference import Segmenter

    cases = gather_cases(data)
    rows = []
    for split, run_dir in finished_folds(cv, model, epochs, members):
        segmenter = Segmenter(fold_checkpoints(run_dir, members), refine=run_dir / "refiner.onnx" if refine else False)
        for name in tqdm(split["test"], desc=f"fold {split['fold']}", unit="scan"):
            thin_image, thin_label, slice_mm = thick_copies(*read_case(cases[name]))
            rows.append({"case": name, "fold": split["fold"], "slice_mm": slice_mm,
                         **scored(segmenter, thin_image, thin_label, cases[name].dataset)})
    return rows


def summary_table(rows: list[dict]) -> str:
    """Body-wise scores and QC flags per data set, in the order the rows name them."""
    metrics = ["body_dice", "bodies_found", "bodies_named"]
    table = [[d, sum(r["dataset"] == d for r in rows),
              *(f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f}" for s in
                summarise([r for r in rows if r["dataset"] == d], metrics).values()),
              sum(r["verdict"] != "ok" for r in rows if r["dataset"] == d)]
             for d in dict.fromkeys(r["dataset"] for r in rows)]
    return markdown_table(["data set", "scans", "body-wise Dice (%)", "bodies found (%)", "bodies named (%)",
                           "QC check or fail"], table)


def write_results(rows: list[dict], out: Path, title: str, module: str, argv: list[str] | None) -> None:
    """``out/cases.json`` and ``out/generated.md``: the summary table under its title and the command that made it."""
    text = summary_table(rows)
    command = f"python -m {module} " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    out.mkdir(parents=True, exist_ok=True)
    write_json(rows, out / "cases.json")
    write_text(f"# {title} (generated)\n\nCommand: `{command}`\n\n{text}\n", out / "generated.md")
    print(text)


def main(argv: list[str] | None = None) -> None:
    parser = fold_parser(__doc__.splitlines()[0])
    parser.add_argument("--refine", action="store_true", help="each fold's outline refiner (refiner.onnx in the fold's "
                        "folder) redraws its results, as the shipped one does in saunet segment")
    args = parser.parse_args(argv)
    rows = sorted(run(args.cv, args.model, args.data, args.epochs, args.member, args.refine), key=lambda r: r["dataset"])
    write_results(rows, args.out, f"Thick slices, every k-th slice (~{TARGET_MM:g} mm)", __spec__.name, argv)


if __name__ == "__main__":
    main()
