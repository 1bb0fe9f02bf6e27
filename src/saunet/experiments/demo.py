"""``saunet demo`` / ``make demo``: the main job end to end.

Without data: make a synthetic cohort, train a brief SAU-Net, segment the held-out phantoms, evaluate, and
write a report with a table and overlay figures. With ``--data``: segment that data set with the shipped
level model (or a briefly trained one with ``--train``) and evaluate against its labels. Either way each scan
gets its quality-control verdict and, from a level model, its measurements, and the HTML pages of
``saunet segment --report`` are written to ``OUT/html``.
"""

from __future__ import annotations

import time
from pathlib import Path

from tqdm import tqdm

from saunet.checkpoints import Checkpoint
from saunet.datasets import list_cases, read_case
from saunet.evaluation import METRICS, case_metrics
from saunet.experiments.reports import box_plots, metrics_table, overlay_figure, sagittal_view, training_curves
from saunet.files import write_csv, write_json, write_text
from saunet.imageio import output_suffix, write_like
from saunet.inference import Segmenter
from saunet.records import measure_volume
from saunet.report import Report
from saunet.training import TrainConfig, train

DEMO_CONFIG = dict(model="sau-net", epochs=8, steps_per_epoch=15, batch_size=2, patch=96, lr=3e-3,
                   loss="dice-bce", model_kwargs={"features": [8, 16, 32, 64]})


def run_demo(out: Path, data: Path | None = None, train_model: bool = True, test_count: int = 3) -> Path:
    started = time.time()
    out.mkdir(parents=True, exist_ok=True)
    if data is None:
        from saunet.experiments.phantoms import write_cohort

        data = out / "phantoms"
        print(f"writing a synthetic cohort of 10 phantoms to {data}")
        write_cohort(data, 10, seed=0, shape=(13, 128, 128))
    cases = list_cases(data)
    test_cases = cases[-test_count:] if train_model else cases
    histories = {}
    if train_model:
        train_cases, val_cases = cases[: -test_count - 1], [cases[-test_count - 1]]
        config = TrainConfig(**DEMO_CONFIG)
        print(f"training a brief SAU-Net on {len(train_cases)} cases ({config.epochs} epochs)")
        train(config, train_cases, val_cases, out / "run")
        model_path = out / "run" / "checkpoint_best.pt"
        histories["sau-net (demo)"] = Checkpoint.load(out / "run" / "checkpoint_last.pt").history
        model_note = f"a SAU-Net trained for {config.epochs} epochs on {len(train_cases)} cases: {model_path}"
    else:
        model_path = None
        model_note = "the shipped vertebral-level SAU-Net"
    segmenter = Segmenter(model_path)
    pages = Report(out / "html", f"saunet demo{' --data ' + str(data) if data != out / 'phantoms' else ''}")
    levels_model = segmenter.label_map.classes is not None
    rows, figures = [], []
    for case in tqdm(test_cases, desc="segmenting"):
        image, label = read_case(case)
        result, verdict = segmenter.segment_checked(image)
        write_like(result.labels, image, out / "predictions" / f"{case.name}{output_suffix(image.path)}")
        pages.add(case.name, image, result, measure_volume(result.labels, image, result.layout) if levels_model else None,
                  verdict)
        rows.append({"model": "sau-net", "case": case.name, "qc": verdict.verdict,
                     **case_metrics(result.labels > 0, label.array > 0, image.spacing)})
        if len(figures) < 3:
            figures.append(overlay_figure(
                sagittal_view(image, image.array), sagittal_view(image, label.array),
                {"SAU-Net": sagittal_view(image, result.labels)}, out / "figures" / f"overlay_{case.name}.png",
                title=case.name))
    write_csv(rows, out / "cases.csv", ["case", *METRICS, "qc"])
    html = pages.finish()
    write_json({"cases": rows}, out / "cases.json")
    if histories:
        figures.append(training_curves(histories, out / "figures" / "training_curves.png"))
    figures.append(box_plots(rows, out / "figures" / "boxplots.png"))
    table = metrics_table(rows)
    report = write_text(
        f"# saunet demo\n\nCommand: `saunet demo{' --data ' + str(data) if data != out / 'phantoms' else ''}`\n\n"
        f"Data: {data} ({len(test_cases)} test cases)\nModel: {model_note}\n\n{table}\n"
        + "".join(f"![{f.stem}](figures/{f.name})\n" for f in figures)
        + "\nQuality control: " + ", ".join(f"{r['case']} {r['qc']}" for r in rows)
        + f"; pages: {html.relative_to(out)}\n\nRan in {time.time() - started:.0f} s.\n",
        out / "report.md")
    print(table)
    print(f"report: {report}; HTML pages with QC verdicts" + (" and measurements" if levels_model else "") + f": {html}")
    print("figures: " + ", ".join(str(f) for f in figures))
    return report
