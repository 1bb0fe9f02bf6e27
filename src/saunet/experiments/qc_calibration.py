"""Quality control calibrated, and measurements checked, on cross-validated predictions (issue 19).

Each fold's model segments its own test scans, as they are and in two contrasts it was never trained on
(the intensities inverted; a T1-like transform that darkens fluid and brightens mid-grey tissue); each result
gets its QC verdict and body-wise scores against the expert masks. The measurements of every level of the
cross-validation's predictions (``fold_K/predictions``, written by ``saunet cv``) are compared with the same
measurements of the expert masks (Bland-Altman). ``--threshold NAME=VALUE`` judges the saved verdicts again with
other QC thresholds, without running a model (how thresholds are chosen for a new model).

    python -m saunet.experiments.qc_calibration --cv runs/cv-levels --model sau-net \
        --data ../shared/data/lumbar-t2 --data ../shared/data/lumbar-water-fat --out reports/qc
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from saunet.crossval import PREDICTIONS, finished_folds, fold_checkpoints, gather_cases, saved_prediction
from saunet.datasets import read_case
from saunet.evaluation import body_metrics, level_map_metrics
from saunet.files import write_json, write_text
from saunet.measurement import measure_levels
from saunet.orientation import volume_layout, world_direction
from saunet.quality import THRESHOLDS, Thresholds, rejudged, training_profile

BAD, GOOD = 0.80, 0.92  # body-wise Dice: the "segmented badly" and "segmented well"
MEASURES = ("volume_cm3", "anterior_height_mm", "middle_height_mm", "posterior_height_mm")
GRADE_WORDS = ("none", "mild", "moderate", "severe")


CONTRASTS = ("original", "inverted", "T1-like")
# Contrasts no QC rule or threshold was set on, to check them on (reports/levels/fallback/session38)
HELD_OUT = ("dark-squared", "valley")
TRANSFORMS = {"inverted": lambda u: 1 - u, "T1-like": lambda u: 4 * u * (1 - u),  # of intensities u scaled to 0..1
              "dark-squared": lambda u: (1 - u) ** 2, "valley": lambda u: 1 - 4 * u * (1 - u)}


def contrasts(array: np.ndarray, kinds: tuple[str, ...] = CONTRASTS) -> dict[str, np.ndarray]:
    """The scan as it is, inverted, T1-like (4u(1-u) of its intensities u scaled to 0..1 by percentiles), or in a
    held-out contrast (:data:`HELD_OUT`: (1-u)^2, 1-4u(1-u)); those of them ``kinds`` names."""
    made = {"original": array}
    if set(kinds) - {"original"}:
        low, high = np.percentile(array, (0.5, 99.5))
        u = np.clip((array.astype(np.float32) - low) / max(high - low, 1e-6), 0, 1)
        made.update({kind: transform(u) * 1000 for kind, transform in TRANSFORMS.items() if kind in kinds})
    return {kind: made[kind] for kind in kinds}


def paired_measures(pred: np.ndarray, ref: np.ndarray, volume) -> list[dict]:
    """Per level of the expert mask: each measure on it (``_ref``), on the predicted level of the same name
    (``_pred``, what a user reads; NaN where missing) and on the predicted level that overlaps the expert body
    most, whatever its name (``_body``: the body's shape alone, naming errors aside)."""
    direction = world_direction(volume, volume_layout(volume))
    found = {r.level: r for r in measure_levels(pred, volume.spacing, direction, volume.origin)}
    expert = {r.level: r for r in measure_levels(ref, volume.spacing, direction, volume.origin)}
    rows = []
    for v in sorted(expert):
        overlap = np.bincount(pred[ref == v].astype(np.int64), minlength=1)
        overlap[0] = 0
        body = int(overlap.argmax()) if overlap.any() else None
        rows.append({"level": v, "name": expert[v].name, "overlapping_level": body,
                     **{f"{m}_ref": getattr(expert[v], m) for m in MEASURES},
                     **{f"{m}_pred": getattr(found[v], m) if v in found else float("nan") for m in MEASURES},
                     **{f"{m}_body": getattr(found[body], m) if body in found else float("nan") for m in MEASURES},
                     "grade_ref": grade_of(expert.get(v)), "grade_pred": grade_of(found.get(v)),
                     "grade_body": grade_of(found.get(body))})
    return rows


def grade_of(row) -> str | None:
    """The first word of a level's grade suggestion (none, mild, moderate, severe); None when it was not graded."""
    word = row.grade_suggestion.split(" ")[0] if row is not None else "not"
    return None if word == "not" else word


def grade_table(rows: list[dict]) -> str:
    """Per data set: the expert levels by the grade their expert mask suggests (rows) and the grade the predicted
    level of the same name suggests (columns), both graded; and how many levels the prediction alone suggests a
    moderate or severe fracture for."""
    lines = ["| data set | expert mask suggests | " + " | ".join(f"predicted: {g}" for g in GRADE_WORDS) + " |",
             "|---|---|" + "---|" * len(GRADE_WORDS)]
    notes = []
    for dataset in sorted({r["dataset"] for r in rows}):
        pairs = [(m["grade_ref"], m["grade_pred"]) for r in rows if r["dataset"] == dataset and r["contrast"] == "original"
                 for m in r["measures"] if m.get("grade_ref") and m.get("grade_pred")]
        for expert in GRADE_WORDS:
            counts = [sum(p == (expert, g) for p in pairs) for g in GRADE_WORDS]
            if any(counts):
                lines.append(f"| {dataset} | {expert} | " + " | ".join(str(c) for c in counts) + " |")
        false = sum(e in ("none", "mild") and g in ("moderate", "severe") for e, g in pairs)
        notes.append(f"{dataset}: a moderate or severe fracture suggested from the prediction where the expert mask "
                     f"suggests none or mild for {false} of {len(pairs)} levels graded on both.")
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes)


def run(cv: Path, model: str, data: list[Path], epochs: int, out: Path, members: list[Path] = (),
        fallback: list[Path] = (), refine: bool = False, kinds: tuple[str, ...] = CONTRASTS) -> list[dict]:
    """Every finished fold's test scans in the three contrasts (or ``kinds`` of them); a fold's rows are kept in
    ``out/fold_K.json`` and read from there when the report is made again. With ``members`` each fold segments with
    the ensemble of its models in ``cv`` and ``members``, with ``fallback`` (CV folders of the same folds) their model,
    or the ensemble of their models, takes over where QC calls for it (``Segmenter.segment_checked``); with ``refine``
    the fold's outline refiner (``refiner.onnx`` in its folder) redraws the bodies, as in ``saunet segment``, and
    the fallback's results its own (``refiner.onnx`` in the first fallback folder's fold: trained with contrast
    curves, as the shipped fallback's is); with
    any of them the fold writes its predictions of the scans as they are to ``out/predictions``."""
    cases = gather_cases(data)
    others = [*members, *fallback]
    rows = []
    for split, run_dir in finished_folds(cv, model, epochs, others):
        saved = out / f"fold_{split['fold']}.json"
        if not saved.exists():
            checkpoints = fold_checkpoints(run_dir, others)
            split_at = len(checkpoints) - len(fallback)
            ensemble, second = checkpoints[:split_at], checkpoints[split_at:]
            refiner = run_dir / "refiner.onnx" if refine else False
            second_refiner = second[0].parent / "refiner.onnx" if refine and second else False
            write_json(fold(ensemble, split, cases, out if others or refine else None, second, refiner, kinds,
                            second_refiner), saved)
        rows += json.loads(saved.read_text())
    return rows


def fold(checkpoints: list[Path], split: dict, cases: dict, out: Path | None = None,
         fallback: list[Path] = (), refiner: Path | bool = False, kinds: tuple[str, ...] = CONTRASTS,
         fallback_refiner: Path | bool = False) -> list[dict]:
    """The fold's test scans in each contrast, segmented by ``checkpoints`` (one, or an ensemble; ``fallback``
    taking over where QC calls for it; ``refiner``, ``fallback_refiner``: the outline refiners' ONNX files of the
    first model's and the fallback's results, or False for none) and judged
    against the profile the current code gives the fold's training scans (a checkpoint keeps the profile of the code
    that trained it); ``out``: where the predictions go (:func:`predictions_folder`)."""
    from saunet.experiments.thick_slices import scan_variant  # which imports this module
    from saunet.imageio import output_suffix, write_like
    from saunet.inference import Segmenter

    segmenter = Segmenter(checkpoints, fallback=list(fallback) or False, refine=refiner, fallback_refine=fallback_refiner)
    trained = [cases[name] for name in split["train"]]
    segmenter.training_profile = training_profile(trained, segmenter.slice_axis)
    if fallback:
        handed_to = segmenter.fallback()
        curves = handed_to.models[0].checkpoint.config.get("contrast_curves", 0.0)  # as training recorded it
        handed_to.training_profile = training_profile(trained, segmenter.slice_axis, curves)
    rows = []
    for name in tqdm(split["test"], desc=f"fold {split['fold']}", unit="scan"):
        image, label = read_case(cases[name])
        for kind in kinds:
            variant, reference = scan_variant(image, label, kind)
            result, verdict = segmenter.segment_checked(variant)
            if out is not None:
                write_like(result.labels, variant, out / predictions_folder(kind) / f"{name}{output_suffix(image.path)}")
            row = {"case": name, "dataset": cases[name].dataset, "fold": split["fold"], "contrast": kind,
                   "verdict": verdict.verdict, "reasons": verdict.reasons, "quality": verdict.to_dict(),
                   **body_metrics(result.labels, reference.array)}
            rows.append(row)
    return rows


def predictions_folder(kind: str) -> str:
    """Where :func:`fold` writes its predictions of the scans in variant ``kind``: those of the scans as they are
    where the CV's own go, the others beside them."""
    return PREDICTIONS if kind == "original" else f"{PREDICTIONS}-{kind}"


def prediction_of(cv: Path, model: str, case: str, fold: int | str = "*", ensemble: Path | None = None) -> Path | None:
    """The cross-validated prediction of ``case``: the CV's own, or with ``ensemble`` (the ``out`` folder of an
    ensemble's :func:`run`) the ensemble's."""
    if ensemble is None:
        return saved_prediction(cv, model, case, fold)
    return next(iter(sorted((ensemble / PREDICTIONS).glob(f"{case}.*"))), None)


def measured_predictions(cv: Path, model: str, data: list[Path], ensemble: Path | None = None) -> list[dict]:
    """Paired measurements of every cross-validated prediction (an ensemble's: see :func:`prediction_of`) and its
    expert mask."""
    from saunet.imageio import read_volume

    rows = []
    for case in tqdm(list(gather_cases(data).values()), desc="measuring", unit="scan"):
        predicted = prediction_of(cv, model, case.name, ensemble=ensemble)
        if predicted:
            expert = read_volume(case.label)
            rows.append({"case": case.name, "dataset": case.dataset, "contrast": "original",
                         "measures": paired_measures(read_volume(predicted).array, expert.array, expert)})
    return rows


def rescore_originals(rows: list[dict], cv: Path, model: str, data: list[Path], ensemble: Path | None = None) -> list[dict]:
    """Body-wise scores of the unchanged scans from the CV's own predictions (the same checkpoints and code give
    the same masks; an ensemble's: see :func:`prediction_of`) with the current :func:`body_metrics`: fold rows
    saved before a change of the metric are scored as the CV report scores them."""
    from saunet.imageio import read_volume

    cases = gather_cases(data)
    for row in rows:
        predicted = prediction_of(cv, model, row["case"], row["fold"], ensemble)
        if row["contrast"] == "original" and predicted:
            row.update(body_metrics(read_volume(predicted).array, read_volume(cases[row["case"]].label).array))
    return rows


def evaluation_rows(rows: list[dict], out: Path, data: list[Path]) -> list[dict]:
    """The scans as they are, each prediction in ``out/predictions`` scored as ``saunet cv`` scores a fold's
    (Dice and distances of the bodies too: :func:`~saunet.evaluation.level_map_metrics`)."""
    from saunet.imageio import read_volume

    cases, scored = gather_cases(data), []
    for row in rows:
        predicted = prediction_of(out, "", row["case"], ensemble=out)
        if row["contrast"] == "original" and predicted:
            label = read_volume(cases[row["case"]].label)
            scored.append({"fold": row["fold"], "case": row["case"], "dataset": row["dataset"],
                           **level_map_metrics(read_volume(predicted).array, label.array, label.spacing)})
    return scored


def flagged_table(rows: list[dict]) -> str:
    """Per contrast and data set: scans segmented badly / well, and how many of each QC flagged."""
    lines = ["| contrast | data set | scans | body-wise Dice < 0.80 | of them flagged | body-wise Dice >= 0.92 | of them "
             "flagged | ok / check / fail |", "|---|---|---|---|---|---|---|---|"]
    for kind in dict.fromkeys(r["contrast"] for r in rows):
        for dataset in sorted({r["dataset"] for r in rows}):
            part = [r for r in rows if r["contrast"] == kind and r["dataset"] == dataset]
            bad = [r for r in part if not r["body_dice"] >= BAD]
            good = [r for r in part if r["body_dice"] >= GOOD]
            counts = " / ".join(str(sum(r["verdict"] == v for r in part)) for v in ("ok", "check", "fail"))
            lines.append(f"| {kind} | {dataset} | {len(part)} | {len(bad)} | {sum(r['verdict'] != 'ok' for r in bad)} | "
                         f"{len(good)} | {sum(r['verdict'] != 'ok' for r in good)} | {counts} |")
    return "\n".join(lines)


def agreement(rows: list[dict], paired_by: str = "pred") -> tuple[str, dict]:
    """Bland-Altman per data set and measure: mean difference (predicted - expert), limits, mean absolute
    difference; volumes also as a share of the expert volume. ``paired_by``: "pred" compares the predicted level
    of the expert level's name, "body" the predicted level that overlaps the expert body most."""
    lines = ["| data set | measure | levels | mean abs. difference | bias | 95 % limits of agreement |",
             "|---|---|---|---|---|---|"]
    pairs = {}
    for dataset in sorted({r["dataset"] for r in rows}):
        measured = [m for r in rows if r["dataset"] == dataset and r["contrast"] == "original" for m in r["measures"]]
        for measure in MEASURES:
            pred = np.array([m[f"{measure}_{paired_by}"] for m in measured], float)
            ref = np.array([m[f"{measure}_ref"] for m in measured], float)
            keep = np.isfinite(pred) & np.isfinite(ref)
            pred, ref = pred[keep], ref[keep]
            pairs[(dataset, measure)] = (pred, ref)
            if not len(ref):
                continue
            diff = pred - ref if measure != "volume_cm3" else 100 * (pred - ref) / ref
            unit = " %" if measure == "volume_cm3" else " mm"
            bias, sd = diff.mean(), diff.std(ddof=1) if len(diff) > 1 else 0.0
            lines.append(f"| {dataset} | {measure} | {len(diff)} | {np.abs(diff).mean():.2f}{unit} | {bias:+.2f}{unit} "
                         f"| {bias - 1.96 * sd:+.2f} to {bias + 1.96 * sd:+.2f}{unit} |")
    return "\n".join(lines), pairs


def bland_altman_figure(pairs: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(MEASURES), figsize=(4.2 * len(MEASURES), 3.8))
    for ax, measure in zip(axes, MEASURES):
        for (dataset, m), (pred, ref) in pairs.items():
            if m != measure or not len(ref):
                continue
            diff = pred - ref if measure != "volume_cm3" else 100 * (pred - ref) / ref
            ax.scatter((pred + ref) / 2, diff, s=10, label=dataset, alpha=0.7)
            bias, sd = diff.mean(), diff.std(ddof=1)
            for y, style in ((bias, "-"), (bias - 1.96 * sd, "--"), (bias + 1.96 * sd, "--")):
                ax.axhline(y, ls=style, lw=0.8, color=ax.collections[-1].get_facecolor()[0])
        ax.set_title(measure.replace("_", " "), fontsize=10)
        ax.set_xlabel("mean of predicted and expert")
        ax.set_ylabel("predicted - expert" + (" (% of expert)" if measure == "volume_cm3" else " (mm)"))
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def fold_arguments(description: str, argv: list[str] | None) -> argparse.Namespace:
    """The command line of an experiment on a CV folder's finished folds (this one, thick_slices, cross_site)."""
    return fold_parser(description).parse_args(argv)


def fold_parser(description: str) -> argparse.ArgumentParser:
    """The options every experiment on a CV folder's finished folds takes; an experiment may add its own."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cv", required=True, type=Path)
    parser.add_argument("--member", action="append", default=[], type=Path, metavar="CV",
                        help="a further CV folder of the same folds: each fold segments with the ensemble of its "
                             "models (repeat for more)")
    parser.add_argument("--model", default="sau-net")
    parser.add_argument("--data", action="append", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--epochs", type=int, default=20, help="the folds' epochs: unfinished folds are left out")
    return parser


def threshold_setting(setting: str) -> tuple[str, float | int | tuple[float, ...]]:
    """One NAME=VALUE of :class:`~saunet.quality.Thresholds` (a pair as LOW,HIGH), typed as its default."""
    name, _, value = setting.partition("=")
    if not hasattr(THRESHOLDS, name):
        raise argparse.ArgumentTypeError(f"no threshold named {name!r}; there are {', '.join(asdict(THRESHOLDS))}")
    default = getattr(THRESHOLDS, name)
    try:
        return name, tuple(float(v) for v in value.split(",")) if isinstance(default, tuple) else type(default)(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{setting!r} is not {name}=NUMBER") from None


def rejudge(rows: list[dict], thresholds: Thresholds) -> list[dict]:
    """The rows with each scan's verdict judged again with ``thresholds`` from its saved quality (no model run)."""
    judged = [rejudged(row["quality"], thresholds) for row in rows]
    return [{**row, "verdict": v.verdict, "reasons": v.reasons, "quality": v.to_dict()} for row, v in zip(rows, judged)]


def main(argv: list[str] | None = None) -> None:
    from saunet.experiments.thick_slices import VARIANTS  # which imports this module

    parser = fold_parser(__doc__.splitlines()[0])
    parser.add_argument("--threshold", action="append", default=[], type=threshold_setting, metavar="NAME=VALUE",
                        help="judge the verdicts again with this QC threshold (saunet.quality.Thresholds; a pair as "
                             "LOW,HIGH) from the fold rows' saved quality, without running a model; repeat for more")
    parser.add_argument("--fallback", action="append", default=[], type=Path, metavar="CV",
                        help="a CV folder of the same folds whose model takes over where QC calls for it, as the "
                             "shipped fallback does in saunet segment; repeat for an ensemble as the fallback")
    parser.add_argument("--contrast", action="append", choices=VARIANTS, dest="kinds",
                        help="segment the scans only in this contrast, or ('thick') with every k-th slice kept, about "
                             "4 mm apart, their expert masks alike (repeat for more; default: the three contrasts)")
    parser.add_argument("--refine", action="store_true",
                        help="each fold's outline refiner redraws its results, as the shipped one does in saunet "
                             "segment: refiner.onnx in the fold's folder (saunet train-refiner --splits --fold)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    ensemble = args.out if args.member or args.fallback or args.refine else None
    rows = rescore_originals(run(args.cv, args.model, args.data, args.epochs, args.out, args.member, args.fallback,
                                 args.refine, tuple(args.kinds or CONTRASTS)), args.cv, args.model, args.data, ensemble)
    rows = rejudge(rows, replace(THRESHOLDS, **dict(args.threshold))) if args.threshold else rows
    write_json(rows, args.out / "qc_cases.json")
    if ensemble is not None:
        write_json({"cases": evaluation_rows(rows, args.out, args.data)}, args.out / "evaluation.json")
    measured = measured_predictions(args.cv, args.model, args.data, ensemble)
    write_json(measured, args.out / "measures.json")
    table, pairs = agreement(measured)
    by_body, _ = agreement(measured, "body")
    bland_altman_figure(pairs, args.out / "bland_altman.png")
    command = "python -m saunet.experiments.qc_calibration " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    write_text(f"# QC calibration and measurement agreement (generated)\n\nCommand: `{command}`\n\n"
               f"## QC against body-wise Dice\n\n{flagged_table(rows)}\n\n## Measurements: predicted against expert "
               f"masks\n\nEach expert level against the predicted level of its name (what a user reads):\n\n{table}\n\n"
               f"Against the predicted level that overlaps the expert body most, whatever its name (the shape alone):"
               f"\n\n{by_body}\n\n![Bland-Altman](bland_altman.png)\n\n## Grade suggestions: predicted against expert "
               f"masks\n\nEach expert level graded on its expert mask and on the predicted level of its name (levels cut "
               f"by the field of view are not graded):\n\n{grade_table(measured)}\n", args.out / "generated.md")
    print(flagged_table(rows))
    print(table)
    print(by_body)
    print(grade_table(measured))


if __name__ == "__main__":
    main()
