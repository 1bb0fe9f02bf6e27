"""The cross-validation report: cv.json, cv.md with the paper's Tables 1 and 4, and its figures."""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from saunet.config import TrainConfig
from saunet.crossval import CVResult, gather_cases
from saunet.datasets import read_case
from saunet.files import write_json
from saunet.postprocessing import MIN_COMPONENT_MM3


def write_cv_report(result: CVResult, report_dir: Path, command: str, config: TrainConfig,
                    cv_dir: Path | None = None, data: Path | None = None) -> Path:
    """cv.json (per-case rows, summaries, command, configuration), cv.md (the paper's tables) and figures."""
    from saunet.evaluation import summarise
    from saunet.experiments.reports import box_plots, metrics_table, paired_table, training_curves
    from saunet.files import write_text
    from saunet.models import count_parameters, create, full_arguments

    models = list(dict.fromkeys(r["model"] for r in result.rows))
    config_dict = {k: v for k, v in asdict(config).items() if k != "model"}
    arguments = {m: full_arguments(m, out_channels=config.label_map.network_channels, **config.model_kwargs)
                 for m in models}
    parameters = {m: count_parameters(create(m, **arguments[m])) for m in models}
    write_json({
        "command": command,
        "config": config_dict,
        "model_arguments": arguments,
        "summary": {m: summarise([r for r in result.rows if r["model"] == m]) for m in models},
        "summary_without_postprocessing": {m: summarise([r for r in result.raw_rows if r["model"] == m])
                                           for m in models},
        "cases": result.rows,
        "cases_without_postprocessing": result.raw_rows,
    }, report_dir / "cv.json")
    figures = [box_plots(result.rows, report_dir / "figures" / "cv_boxplots.png"),
               training_curves(result.histories, report_dir / "figures" / "cv_training_curves.png")]
    if cv_dir is not None and data is not None:
        figures += _overlay_worst_case(result, cv_dir, data, report_dir, models)
        if cv_dir.resolve() != report_dir.resolve():  # the report carries the folds it was made on
            shutil.copyfile(cv_dir / "splits.json", report_dir / "splits.json")
    folds = {m: sorted({r["fold"] for r in result.rows if r["model"] == m}) for m in models}
    cases = {m: {r["case"] for r in result.rows if r["model"] == m} for m in models}
    common = set.intersection(*cases.values()) if cases else set()
    devices = {m: Counter(result.trained_on.get(f"{m} fold {f}", "unrecorded") for f in folds[m]) for m in models}
    text = [
        "# Cross-validation\n",
        f"Command: `{command}`\n",
        f"Folds reported, of {result.fold_count} (splits in `splits.json`, by patient, shared by every model): "
        + "; ".join(f"{m} {len(folds[m])} ({len(cases[m])} cases)" for m in models) + ".\n",
        "Configuration: " + ", ".join(f"{k}={v}" for k, v in config_dict.items()) + "\n",
        "Trained on: " + "; ".join(f"{m} " + ", ".join(f"{device} ({n} folds)" for device, n in devices[m].items())
                                   for m in models) + "\n",
        "Models: " + "; ".join(f"{m} ({parameters[m] / 1e6:.2f} M parameters: "
                               + ", ".join(f"{k}={v}" for k, v in arguments[m].items()) + ")" for m in models) + "\n",
        "## Table 1: models compared (with post-processing)\n",
        ("Post-processing, the same for every model: connected components under "
         f"{MIN_COMPONENT_MM3:.0f} mm³ are removed, then each body gets one level, the levels running from the "
         "most superior body down in one run chosen from the whole column's level probabilities "
         "(`saunet.postprocessing.assign_levels`); bodies the run places outside the level table are dropped.\n"
         if config.classes else
         "Post-processing, the same for every model: connected components under "
         f"{MIN_COMPONENT_MM3:.0f} mm³ are removed, and only the N largest of the rest are kept, N being the median "
         "number of components in the fold's training masks (lumbar-t2: 7, the masks label T11-L5 only).\n"),
        metrics_table(result.rows, groups=models),
    ]
    baselines = [m for m in models if m not in ("sau-net", "dense-unet")]  # dense-unet is Table 4's
    if "sau-net" in models and baselines:
        text += ["SAU-Net against each baseline, paired per case (cases both were tested on, with post-processing):\n"]
        text += [paired_table(result.rows, "sau-net", m) for m in baselines]
    text += per_dataset_sections(result.rows, models)
    text += ["## Without post-processing\n", metrics_table(result.raw_rows, groups=models)]
    if any(cases[m] != common for m in models):  # folds still running: compare on the same cases too
        text += [f"## Table 1 on the {len(common)} cases every model has been tested on (with post-processing)\n",
                 metrics_table([r for r in result.rows if r["case"] in common], groups=models)]
    if {"sau-net", "dense-unet"} <= set(models):
        both = cases["sau-net"] & cases["dense-unet"]
        text += ["## Table 4: ablation of the inter-slice attention (ISA)\n",
                 f"SAU-Net is the Dense U-Net (w/o ISA) plus the attention fusion; {len(both)} cases both were "
                 "tested on, with post-processing.\n",
                 metrics_table([{**r, "model": "w/ ISA" if r["model"] == "sau-net" else "w/o ISA"}
                                for r in result.rows if r["model"] in ("sau-net", "dense-unet") and r["case"] in both],
                               groups=["w/o ISA", "w/ ISA"]),
                 "Paired, per case:\n",
                 paired_table(result.rows, "sau-net", "dense-unet"),
                 "Without post-processing, paired per case:\n",
                 paired_table(result.raw_rows, "sau-net", "dense-unet")]
    text += ["## Figures\n"] + [f"![{f.stem}](figures/{f.name})\n" for f in figures]
    return write_text("\n".join(text), report_dir / "cv.md")


def per_dataset_sections(rows: list[dict], models: list[str]) -> list[str]:
    """With several data sets: each set's table (overlap, distances and body-wise scores) and, per set, SAU-Net
    against every other model paired per case. Body-wise scores do not count predicted bodies at levels a set
    leaves unannotated, which is how sets of different protocols compare."""
    from saunet.evaluation import BODY_METRICS, METRICS
    from saunet.experiments.reports import metrics_table, paired_table

    sets = sorted({r.get("dataset", "") for r in rows})
    if len(sets) < 2:
        return []
    text = ["## Per data set (with post-processing)\n"]
    for name in sets:
        of_set = [r for r in rows if r.get("dataset", "") == name]
        text += [f"### {name}\n", metrics_table(of_set, groups=[m for m in models if any(r["model"] == m for r in of_set)],
                                                 metrics=(*METRICS, *BODY_METRICS))]
        if "sau-net" in models:
            text += [paired_table(of_set, "sau-net", m, metrics=("body_dice", "hd", "hd95", "bodies_named"))
                     for m in models if m != "sau-net"]
    return text


def _overlay_worst_case(result, cv_dir, data, report_dir, models) -> list[Path]:
    """The paper's Figure 4 for the case where the first model's Hausdorff distance is worst."""
    from saunet.experiments.reports import overlay_figure, sagittal_view
    from saunet.imageio import read_volume

    first = [r for r in result.rows if r["model"] == models[0]]
    worst = max(first, key=lambda r: r["hd"])
    case = gather_cases(data)[worst["case"]]
    image, label = read_case(case)
    predictions = {}
    for model in models:
        row = next((r for r in result.rows if r["model"] == model and r["case"] == worst["case"]), None)
        if row is None:  # this model's fold with the case has not finished yet
            continue
        pred_dir = cv_dir / model / f"fold_{row['fold']}" / "predictions"
        path = next(pred_dir.glob(f"{worst['case']}.*"))
        predictions[f"{model} (HD {row['hd']:.1f} mm)"] = sagittal_view(image, read_volume(path).array)
    return [overlay_figure(sagittal_view(image, image.array), sagittal_view(image, label.array), predictions,
                           report_dir / "figures" / f"cv_overlay_{worst['case']}.png",
                           title=f"{worst['case']}: worst Hausdorff distance of {models[0]}")]
