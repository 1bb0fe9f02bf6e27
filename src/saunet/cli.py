"""The ``saunet`` command. Every subcommand has --help; bad input ends with one line on stderr and exit 2."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from saunet.config import FIELD_EDGE_ENDS, LOSSES, REFINER_BATCH, REFINER_PATCH, RecipeError, TrainConfig, check_refiner_patches
from saunet.errors import InputError
from saunet.postprocessing import PostprocessingSettings

DEFAULTS = TrainConfig()


def _add_training_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=DEFAULTS.epochs, help="epochs (default %(default)s)")
    g.add_argument("--steps-per-epoch", type=int, default=DEFAULTS.steps_per_epoch,
                   help="optimiser steps per epoch (default %(default)s)")
    g.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size,
                   help="slice stacks per step (default: 4, or 1 patch for unet3d)")
    g.add_argument("--stack", type=int, default=DEFAULTS.stack,
                   help="consecutive slices per sample (default: 16 for unet3d, 3 otherwise)")
    g.add_argument("--patch", type=int, default=DEFAULTS.patch,
                   help="in-plane crop in pixels on the network grid (default %(default)s)")
    g.add_argument("--lr", type=float, default=DEFAULTS.lr, help="Adam learning rate (default %(default)s, the paper's)")
    g.add_argument("--loss", choices=LOSSES, default=DEFAULTS.loss,
                   help="bce (the paper's), dice-bce (soft Dice per slice stack) or batch-dice-bce (soft Dice over the batch)")
    g.add_argument("--seed", type=int, default=DEFAULTS.seed)
    g.add_argument("--bf16", action="store_true", help="bfloat16 autocast (slower than float32 for training on CPU)")
    g.add_argument("--no-augment", action="store_true", help="turn augmentation off")
    g.add_argument("--appearance", action="store_true",
                   help="also vary the MRI appearance of the training stacks: bias field, gamma (also inverted), noise, "
                        "blur, lower resolution (for scanners and contrasts the training data lack)")
    g.add_argument("--contrast-curves", type=float, default=DEFAULTS.contrast_curves, metavar="SHARE",
                   help="share of slice stacks whose intensities pass through a random non-monotonic curve, for "
                        "contrasts the training data lack (default %(default)s)")
    g.add_argument("--spatial-share", type=float, default=DEFAULTS.spatial_share, metavar="SHARE",
                   help="share of slice stacks rotated and scaled in-plane; the rest keep their pixels and labels "
                        "unresampled (default %(default)s)")
    g.add_argument("--no-channels-last", action="store_true",
                   help="train the 2D models in the plain NCHW memory format (slower on CPU; same function)")
    g.add_argument("--soft-labels", action="store_true",
                   help="train on the share of each network-grid pixel the mask covers, not a nearest-neighbour label")
    g.add_argument("--target-zoom", type=int, default=DEFAULTS.target_zoom, metavar="N",
                   help="score the loss N times finer in-plane than the network grid, the logits resampled as "
                        "inference does, against labels that fine (default %(default)s: on the network grid)")
    g.add_argument("--thick-slices", type=float, default=DEFAULTS.thick_slices, metavar="SHARE",
                   help="share of slice stacks drawn as 3-5 mm thick slices, averaging the stored ones (default %(default)s)")
    g.add_argument("--field-edges", type=float, default=DEFAULTS.field_edges, metavar="SHARE",
                   help="share of slice stacks cropped to begin (or end: --field-edge-ends) within the spine, the "
                        "crop's edge cutting a body as a field of view ending there does (default %(default)s)")
    g.add_argument("--field-edge-ends", choices=FIELD_EDGE_ENDS, default=DEFAULTS.field_edge_ends,
                   help="which end of a --field-edges crop cuts the spine: caudal (no sacrum in view), cranial "
                        "(nothing above the cut) or both, at even odds (default %(default)s)")
    g.add_argument("--ema", type=float, default=DEFAULTS.ema, metavar="DECAY",
                   help="validate and save an exponential moving average of the weights, updated every step with this "
                        "decay, e.g. 0.995 (default %(default)s: off)")
    g.add_argument("--unannotated-anywhere", action="store_true",
                   help="let a level a data set leaves unannotated be any unlabelled voxel of its scans, not only one "
                        "beside the annotated bodies (the recipe of the weights shipped until session 16)")
    g.add_argument("--loader-workers", type=int, default=DEFAULTS.loader_workers, metavar="N",
                   help="processes drawing the training batches ahead of the steps (default %(default)s: drawn in the "
                        "training process); for a GPU, whose steps wait on the sampling")
    g.add_argument("--spacing", type=float, default=None,
                   help=f"in-plane spacing of the network grid in mm; 0 keeps the native grid "
                        f"(default {DEFAULTS.in_plane_spacing})")
    g.add_argument("--classes", default=None,
                   help="comma-separated label values to learn as classes (default: binary, any label > 0)")
    g.add_argument("--width", default=None,
                   help="model features per level, comma-separated (default: the model's own)")
    g.add_argument("--growth", type=int, default=None,
                   help="channels each densely connected convolution adds (Dense U-Net, SAU-Net; default: the model's own)")
    g.add_argument("--slice-axis", type=int, default=None, help="array axis of the sagittal slices (default: from orientation)")
    g.add_argument("--threads", type=int, default=0,
                   help="CPU threads for PyTorch (default: all; with cv --workers, all shared among the workers). "
                        "A CPU run repeats exactly at the same seed and thread count; another count sums in another "
                        "order, and the weights part after a few steps")


def _set_threads(threads: int) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def class_values(text: str) -> tuple[int, ...]:
    """``--classes`` ``1,2,3`` -> the label values to learn as classes, in the order given (the classes' order)."""
    try:
        return tuple(int(c) for c in text.split(","))
    except ValueError:
        raise InputError("--classes", f"{text!r} is not comma-separated label values such as 1,2,3") from None


def _training_config(args, models: list[str]) -> TrainConfig:
    """The recipe the options ask for (its model the first of ``models``, the one trained or those of a CV); a value
    TrainConfig refuses is a one-line error naming its option."""
    kwargs = {"features": list(_widths(args.width))} if args.width else {}
    if args.growth:
        kwargs["growth"] = args.growth
        from saunet.models import takes_argument

        if not any(takes_argument(m, "growth") for m in models):
            raise InputError("--growth", f"{', '.join(models)} has no densely connected convolutions to widen")
    spacing = TrainConfig.in_plane_spacing if args.spacing is None else (args.spacing or None)  # 0: native grid
    try:
        return TrainConfig(
            model=models[0], model_kwargs=kwargs, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
            batch_size=args.batch_size, stack=args.stack, patch=args.patch, lr=args.lr, loss=args.loss,
            seed=args.seed, bf16=args.bf16, augment=not args.no_augment, appearance=args.appearance,
            contrast_curves=args.contrast_curves, spatial_share=args.spatial_share,
            channels_last=not args.no_channels_last,
            soft_labels=args.soft_labels, target_zoom=args.target_zoom, thick_slices=args.thick_slices, ema=args.ema,
            field_edges=args.field_edges, field_edge_ends=args.field_edge_ends,
            unannotated_anywhere=args.unannotated_anywhere,
            loader_workers=args.loader_workers, in_plane_spacing=spacing, slice_axis=args.slice_axis,
            classes=class_values(args.classes) if args.classes else None,
        )
    except RecipeError as error:
        raise InputError("--" + error.field.replace("_", "-"), error.problem) from None


def command_line() -> str:
    return "saunet " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def cmd_train(args) -> None:
    import numpy as np

    from saunet.datasets import list_cases

    config = _training_config(args, [args.model])
    cases = [case for data in args.data for case in list_cases(data, args.layout)]
    order = np.random.default_rng(args.seed).permutation(len(cases))
    val = [cases[i] for i in order[: args.val]]
    train_cases = [cases[i] for i in order[args.val :]]
    if not train_cases:
        raise InputError(", ".join(args.data), f"{len(cases)} case(s) leave none for training after {args.val} for validation")
    from saunet.training import train

    _set_threads(args.threads)
    summary = train(config, train_cases, val, args.out, resume=args.resume)
    if val:
        print(f"best validation Dice {summary['best_val_dice']:.4f}; checkpoints in {args.out}")
    else:
        print(f"trained without validation cases (checkpoint_best.pt is the last epoch); checkpoints in {args.out}")


def cmd_train_refiner(args) -> None:
    from saunet.crossval import gather_cases, read_splits

    widths = {"features": _widths(args.width, count=6)} if args.width else {}
    try:
        check_refiner_patches(args.patch, args.batch)
    except RecipeError as error:
        raise InputError(f"--{error.field}", error.problem) from None
    cases = gather_cases([Path(d) for d in args.data])
    names = sorted(cases)
    if args.splits:
        splits = read_splits(Path(args.splits), list(cases))
        if not 0 <= args.fold < len(splits):
            raise InputError(args.splits, f"holds no fold {args.fold} (it has {len(splits)})")
        names = splits[args.fold]["train"]
    from saunet.refiner_training import train_refiner

    _set_threads(args.threads)
    onnx = train_refiner([cases[n] for n in names], args.steps, Path(args.out), args.seed, balanced=args.balanced,
                         contrast_curves=args.contrast_curves, size=args.patch, batch=args.batch, **widths)
    print(f"refiner written to {onnx}")


def cmd_cv(args) -> None:
    from saunet.crossval import run_cv
    from saunet.experiments.cv_report import write_cv_report

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    config = _training_config(args, models)
    folds = _folds(args.folds)
    _set_threads(args.threads)
    data = [Path(d) for d in args.data]
    result = run_cv(data, folds, models, Path(args.out), config, seed=args.seed,
                    finished_only=args.finished_only, workers=args.workers, only_folds=args.only_folds,
                    start_from=Path(args.start_from) if args.start_from else None)
    if not result.rows:
        raise InputError(args.out, "no finished fold to report on")
    report = write_cv_report(result, Path(args.report or args.out), command_line(), config, Path(args.out), data)
    print(f"report: {report}")


def _widths(value: str, count: int | None = None) -> tuple[int, ...]:
    """--width: positive whole numbers, comma-separated (``count`` of them where the network needs that many)."""
    widths = value.split(",")
    if (count is not None and len(widths) != count) or not all(w.strip().isdigit() and int(w) > 0 for w in widths):
        many = "" if count is None else f"{count} "
        raise InputError("--width", f"{value!r} is not {many}positive whole numbers, comma-separated")
    return tuple(int(w) for w in widths)


def _folds(value: str) -> str | int:
    """--folds: 'loo' or a whole number of at least 2."""
    if value == "loo":
        return value
    if not value.isdigit() or int(value) < 2:
        raise InputError("--folds", f"{value!r} is neither a number of folds (2 or more) nor loo")
    return int(value)


def cmd_segment(args) -> None:
    from tqdm import tqdm

    from saunet.dicom_seg import numbered, seg_path, write_dicom_seg
    from saunet.imageio import case_id, case_name, output_suffix, read_volume, write_like
    from saunet.inference import Segmenter, placed
    from saunet.label_tables import write_label_tables
    from saunet.orientation import OBLIQUE_WARNING_DEGREES
    from saunet.records import measure_volume, write_record

    inputs = [Path(p) for p in args.inputs]
    for path in inputs:
        if not path.exists():
            raise InputError(path, "no such file or folder")
        if args.dicom_seg and not path.is_dir():
            raise InputError(path, "--dicom-seg needs a DICOM series folder as input (a SEG references its source images)")
    segmenter = Segmenter(args.model, device=args.device, bf16=args.bf16, min_component_mm3=args.min_component_mm3,
                          max_components=args.max_components,
                          fallback=True if args.fallback is None else args.fallback, refine=args.refine)
    levels_model = segmenter.label_map.classes is not None
    for flag, wanted in (("--levels", args.levels), ("--measure", args.measure)):
        if wanted and not levels_model:
            raise InputError(segmenter.paths[0],
                             f"{flag} needs a model trained for level classes (--classes); this one is binary")
    out = Path(args.output)
    several = len(inputs) > 1
    report = None
    if args.report:
        from saunet.report import Report

        report = Report(Path(args.report), command_line())
    for path in tqdm(inputs, desc="segmenting", unit="scan", disable=None if several else True):
        volume = read_volume(path)
        target = out / f"{case_id(path)}{output_suffix(path)}" if several else out
        result, verdict = segmenter.segment_checked(volume, args.slice_axis, args.orientation, args.prob)
        if result.layout.obliquity > OBLIQUE_WARNING_DEGREES:
            tqdm.write(f"saunet: warning: {path}: slices {result.layout.obliquity:.0f} degrees oblique; segmented on "
                       "the nearest anatomical axes without resampling, so less reliable", file=sys.stderr)
        labels = result.labels if args.levels or not levels_model else (result.labels > 0)
        names = segmenter.label_map.names(levels=args.levels)
        if args.dicom_seg:  # first: a series it cannot reference stops the job before anything is written
            write_dicom_seg(labels.astype("uint8"), path, numbered(names), seg_path(target))
        write_like(labels.astype("uint8"), volume, target)
        write_label_tables(names, target)
        rows = measure_volume(result.labels, volume, result.layout) if levels_model and (args.measure or report) else None
        made_by = {"command": command_line(), "input": str(path), "model": result.model, "refiner": result.refiner}
        write_record(target, made_by, verdict, rows if args.measure else None)
        if report is not None:
            report.add(case_id(path), volume, result, rows, verdict)
        if verdict.reasons:  # never passed off silently, nor a result the fallback model made
            tqdm.write(f"saunet: {verdict.verdict}: {path}: " + "; ".join(verdict.reasons), file=sys.stderr)
        if args.prob:
            prob_path = target.with_name(case_name(target) + "_prob" + output_suffix(target))
            write_like(placed(result.box_probabilities.max(0), result.box, labels.shape), volume, prob_path)
        if not several:
            print(f"wrote {target} (quality control: {verdict.verdict})")
    if several:
        print(f"wrote {len(inputs)} label maps to {out}")
    if report is not None:
        print(f"report: {report.finish()}")


def cmd_measure(args) -> None:
    from saunet.experiments.reports import markdown_table
    from saunet.imageio import read_volume, same_geometry
    from saunet.measurement import COLUMNS
    from saunet.orientation import volume_layout
    from saunet.postprocessing import label_components, present_values
    from saunet.quality import assess_map
    from saunet.records import measure_volume, write_record

    labels = read_volume(args.labels)
    values = {int(v) for v in present_values(labels.array)}
    if not values:
        raise InputError(args.labels, "label map is empty: nothing to measure")
    if values == {1} and label_components(labels.array > 0).max() > 1:
        raise InputError(args.labels, "holds one label for several bodies: a body map, not a level map (segment with --levels)")
    geometry = labels
    if args.image:
        geometry = read_volume(args.image)
        mismatch = same_geometry(geometry, labels)
        if mismatch:
            raise InputError(args.labels, f"grid does not match the image {args.image}: {mismatch}")
    layout = volume_layout(geometry, None, args.orientation)
    rows = measure_volume(labels.array, geometry, layout)
    verdict = assess_map(labels.array, labels.spacing)
    target = Path(args.out) if args.out else Path(args.labels)
    paths = write_record(target, {"command": command_line(), "labels": str(args.labels)}, verdict, rows)
    shown = ["name", "volume_cm3", "anterior_height_mm", "middle_height_mm", "posterior_height_mm", "wedge_ratio",
             "biconcavity_ratio", "grade_suggestion", "disc_below_middle_mm"]
    print(markdown_table(shown, [[f"{getattr(r, c):.3g}" if isinstance(getattr(r, c), float) else getattr(r, c)
                                  for c in shown] for r in rows]))
    print(f"quality control: {verdict.verdict}" + "".join(f"\n  {reason}" for reason in verdict.reasons))
    print(f"wrote {paths['csv']} and {paths['json']} ({len(COLUMNS)} columns, units in their names)")


def label_values(text: str) -> tuple[int, ...]:
    """``1-7`` or ``1,2,3`` (or both, ``1-5,8``) -> the label values, for argparse."""
    try:
        values = [v for part in text.split(",") for v in
                  (range(int(part.split("-")[0]), int(part.split("-")[1]) + 1) if "-" in part else [int(part)])]
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError(f"{text!r} is not label values such as 1-7 or 1,2,3") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: label values are integers from 1")
    return tuple(sorted(set(values)))


def cmd_evaluate(args) -> None:
    from saunet.evaluation import BODY_METRICS, METRICS, evaluate_folders, summarise
    from saunet.experiments.reports import metrics_table
    from saunet.files import write_csv, write_json, write_text

    rows = evaluate_folders(Path(args.pred), Path(args.ref), per_body=args.per_body, ref_labels=args.ref_labels)
    metrics = [*METRICS, *BODY_METRICS] if args.per_body else list(METRICS)
    write_csv(rows, Path(args.csv), ["case", *metrics, *(["bodies"] if args.per_body else [])])
    summary = summarise(rows, metrics)
    if args.json:
        write_json({"command": command_line(), "summary": summary, "cases": rows}, Path(args.json))
    table = metrics_table([{**r, "model": Path(args.pred).name} for r in rows], metrics=metrics)
    if args.markdown:
        write_text(f"# Evaluation\n\nCommand: `{command_line()}`\n\n{table}", Path(args.markdown))
    print(table)


def cmd_check_data(args) -> None:
    from saunet.datasets import check_dataset
    from saunet.experiments.reports import markdown_table

    rows = check_dataset(args.data, args.layout)
    print(markdown_table(list(rows[0]), [list(r.values()) for r in rows]))
    bad = [r for r in rows if r["problem"] != "ok"]
    if bad:
        print(f"{len(bad)} of {len(rows)} case(s) have problems", file=sys.stderr)
        raise SystemExit(2)
    print(f"all {len(rows)} cases ok")


def cmd_info(args) -> None:
    from saunet.experiments.reports import markdown_table
    from saunet.models import MODELS, count_flops, count_parameters, create

    shape = (1, 1, *args.shape)
    rows = []
    for name in MODELS:
        model = create(name)
        params = count_parameters(model)
        rows.append([name, f"{params / 1e6:.3f} M", f"{params * 4 / 2**20:.2f}",
                     f"{count_flops(model, shape) / 1e9:.1f}"])
    print(markdown_table(["model", "parameters", "size (MB)", f"GFLOP per {'x'.join(map(str, args.shape))} volume"], rows))


def cmd_export(args) -> None:
    import tempfile

    from saunet.export import calibration_scans, export_inference_checkpoint, export_onnx, quantize_onnx

    if not args.onnx and not args.pt and not args.int8:
        raise InputError("saunet export", "give --onnx FILE, --int8 FILE and/or --pt FILE")
    if args.int8 and not args.calibrate:
        raise InputError("saunet export", "--int8 needs --calibrate SCANS: scans like those it will segment set its "
                                          "activation ranges")
    scans = calibration_scans([Path(source) for source in args.calibrate or []])
    if args.onnx:
        print(f"wrote {export_onnx(args.model, Path(args.onnx))}")
    if args.int8:
        with tempfile.TemporaryDirectory() as folder:
            source = Path(args.onnx) if args.onnx else export_onnx(args.model, Path(folder) / "float.onnx")
            print(f"wrote {quantize_onnx(source, scans, Path(args.int8))}")
    if args.pt:
        if not args.model:
            raise InputError("saunet export", "--pt needs --model CHECKPOINT")
        print(f"wrote {export_inference_checkpoint(args.model, Path(args.pt))}")


def cmd_benchmark(args) -> None:
    from saunet.experiments.benchmark import run_benchmark

    run_benchmark(Path(args.data), Path(args.json) if args.json else None,
                  Path(args.markdown) if args.markdown else None, command_line(), args.repeats)


def cmd_demo(args) -> None:
    from saunet.experiments.demo import run_demo

    run_demo(Path(args.out), Path(args.data) if args.data else None, train_model=args.train or not args.data)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="saunet", description="Spine segmentation in sagittal MRI with SAU-Net.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("segment", help="segment scans into vertebral-body label maps",
                       description="Segment sagittal spine MR scans; outputs keep the input's exact geometry. Any array layout "
                                   "the header describes is brought into the models' layout and back without "
                                   "resampling; an oblique scan takes its nearest axes (a warning beyond 25 degrees, "
                                   "refused at 45); a header without orientation needs --orientation or --slice-axis. "
                                   "Beside each label map: viewer tables (.ctbl, .itksnap.txt, .labels.json).")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="NIfTI/MHA/NRRD file or DICOM series folder")
    p.add_argument("-o", "--output", required=True, help="output file (one input) or folder (several)")
    p.add_argument("--model", default=None, action="append",
                   help="checkpoint (.pt) or ONNX export (.onnx); repeat for an ensemble that averages the models' "
                        "logits; default: shipped model")
    fallback = p.add_mutually_exclusive_group()
    fallback.add_argument("--fallback", action="append", metavar="MODEL",
                          help="the model that segments a scan again where quality control finds the first result in "
                               "doubt (bodies' contrast unlike the training scans', too few bodies, or fail); repeat "
                               "for an ensemble; default: the shipped one (trained with random contrast curves) when "
                               "the shipped ensemble runs")
    fallback.add_argument("--no-fallback", dest="fallback", action="store_false", default=None,
                          help="keep the first result whatever quality control finds")
    refine = p.add_mutually_exclusive_group()
    refine.add_argument("--refiner", dest="refine", default=None, metavar="ONNX",
                        help="the outline refiner that redraws the bodies' outlines at the scan's own in-plane grid "
                             "(saunet train-refiner); default: the shipped one with the shipped ensemble, none with "
                             "a model of --model")
    refine.add_argument("--no-refine", dest="refine", action="store_false",
                        help="keep the level network's outlines (1.875 mm grid, resampled)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--prob", action="store_true", help="also write the probability map (<name>_prob)")
    p.add_argument("--levels", action="store_true", help="write vertebral level labels (models trained with --classes)")
    p.add_argument("--dicom-seg", action="store_true",
                   help="for a DICOM series input, also write a DICOM SEG referencing it (<case>.seg.dcm beside the "
                        "label map), one segment per label with its name and SNOMED CT code")
    p.add_argument("--orientation", default=None, metavar="CODE",
                   help="the array layout, for headers without one: the direction each file axis (i, j, k, as NIfTI "
                        "and ITK count them) runs towards, e.g. RPS (default: the header's direction matrix)")
    p.add_argument("--slice-axis", type=int, default=None,
                   help="numpy (SimpleITK) array axis of the sagittal slices, in-plane axes taken as stored; "
                        "overrides the header's orientation")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    p.add_argument("--min-component-mm3", type=float, default=PostprocessingSettings.min_component_mm3,
                   help="remove predicted islands smaller than this (default %(default)s mm^3; 0 keeps all)")
    p.add_argument("--max-components", type=int, default=None,
                   help="keep only this many of the largest components (binary models; default: the number in the "
                        "model's training masks; 0 keeps all)")
    p.add_argument("--measure", action="store_true",
                   help="measure every level (level models): <case>.measures.csv and the measurements in "
                        "<case>.results.json (docs/measurements.md)")
    p.add_argument("--report", default=None, metavar="DIR",
                   help="write a self-contained HTML page per scan to DIR, and a cohort page (index.html)")
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser("measure", help="measure each level of a level map",
                       description="Per level: volume, anterior/middle/posterior height in the body's own frame, "
                                   "wedge and biconcavity ratios, height loss against the neighbouring levels, a "
                                   "Genant-style grade suggestion (a suggestion, not a diagnosis), and the disc "
                                   "below. Writes <case>.measures.csv and <case>.results.json (with quality control "
                                   "of the map) beside the label map or at --out. Definitions: docs/measurements.md.")
    p.add_argument("labels", help="level map (values 1 T11 ... 7 L5), any format saunet reads")
    p.add_argument("--image", default=None, help="the scan it belongs to: its header gives the geometry, and the "
                                                 "grids must match")
    p.add_argument("--orientation", default=None, metavar="CODE",
                   help="the array layout for a header without one (e.g. RPS), as for segment")
    p.add_argument("-o", "--out", default=None,
                   help="path prefix of the outputs (default: beside the label map, its name without suffix)")
    p.set_defaults(func=cmd_measure)

    p = sub.add_parser("evaluate", help="compare predictions with references",
                       description="Dice, Jaccard, precision, recall, HD, HD95, ASSD per case, and a summary.")
    p.add_argument("--pred", required=True, help="folder of predicted label maps")
    p.add_argument("--ref", required=True, help="folder of reference label maps")
    p.add_argument("--csv", required=True, help="per-case CSV to write")
    p.add_argument("--json", help="summary and cases as JSON")
    p.add_argument("--markdown", help="summary table as Markdown")
    p.add_argument("--per-body", action="store_true",
                   help="also body-wise scores: each reference body (label value) against the predicted components "
                        "that overlap it; predictions at unannotated levels do not count")
    p.add_argument("--ref-labels", type=label_values, metavar="VALUES",
                   help="the reference's values that are vertebral bodies, e.g. 1-7 or 18,19,20 (default: every value "
                        "> 0); its other labels (a sacrum, discs, the spinal canal) are left out of every score")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("train", help="train a model",
                       description="Train one model on one or several data sets. Where a data set's dataset.json "
                                   "lists annotated_labels, its unlabelled voxels may be any unannotated class: "
                                   "the loss merges them with background (partial labels).")
    p.add_argument("--data", required=True, action="append",
                   help="data-set folder; repeat for several (each sampled equally often)")
    p.add_argument("--layout", default=None, help="nnunet, mrspineseg, spider or folders (default: detected)")
    p.add_argument("--model", default="sau-net", help="sau-net, dense-unet, unet2d or unet3d")
    p.add_argument("--out", required=True, help="run folder for checkpoints and metrics.csv")
    p.add_argument("--val", type=int, default=1, help="cases held out for validation (default 1)")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint_last.pt")
    _add_training_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("train-refiner", help="train the outline refiner at the scans' own in-plane grid",
                       description="Train the 2D network that redraws each body's outline near a level map "
                                   "(saunet.refinement); resumes from OUT/refiner.pt, ends with OUT/refiner.onnx.")
    p.add_argument("--data", required=True, action="append", help="data-set folder; repeat for several")
    p.add_argument("--splits", default=None, help="a CV's splits.json: train on one fold's training scans only")
    p.add_argument("--fold", type=int, default=0, help="the fold of --splits (default 0)")
    p.add_argument("--steps", type=int, default=3000, help="batches of patches (default %(default)s)")
    p.add_argument("--patch", type=int, default=REFINER_PATCH, metavar="PIXELS",
                   help="side of each training patch, a multiple of 16 (default %(default)s)")
    p.add_argument("--batch", type=int, default=REFINER_BATCH, help="patches a step (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--balanced", action="store_true",
                   help="draw each data set as often as every other, as the level network does (default: each scan; "
                        "fold 0 in reports/levels/refine: lumbar-t2 Dice +0.3-0.5, water-fat body-wise -0.2 to +0.1)")
    p.add_argument("--width", default=None, metavar="N,N,N,N,N,N",
                   help="the BasicUNet's features per level, six comma-separated, as train's --width (default "
                        "8,16,32,64,128,8; 16,32,64,128,256,16 is four times the compute)")
    p.add_argument("--contrast-curves", type=float, default=0.0, metavar="SHARE",
                   help="share of patches passed through a random intensity curve, as train's --contrast-curves (for "
                        "a refiner of the fallback's results: scans of contrasts the training data lack)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch")
    p.add_argument("--out", required=True, help="folder for refiner.pt and refiner.onnx")
    p.set_defaults(func=cmd_train_refiner)

    p = sub.add_parser("cv", help="cross-validate models on the same folds",
                       description="k-fold or leave-one-out cross-validation of several models; resumable. With "
                                   "several --data, each set is split on its own and every fold tests every set.")
    p.add_argument("--data", required=True, action="append", help="data-set folder; repeat for several")
    p.add_argument("--folds", default="5", help="number of folds, or loo (default %(default)s)")
    p.add_argument("--models", default="sau-net,dense-unet,unet2d,unet3d")
    p.add_argument("--out", required=True, help="CV folder: splits.json and one run folder per model and fold")
    p.add_argument("--report", default=None, help="folder for cv.json, cv.md and figures (default: --out)")
    p.add_argument("--finished-only", action="store_true",
                   help="train nothing: report on the folds whose training has finished")
    p.add_argument("--only-folds", type=lambda text: [int(k) for k in text.split(",")], default=None,
                   metavar="K[,K...]", help="train and report only these folds of the splits (default: all)")
    p.add_argument("--workers", type=int, default=1,
                   help="folds trained at once in separate processes (default 1); on CPU 2 beats 1 by ~1.4x")
    p.add_argument("--start-from", default=None, metavar="CV",
                   help="an earlier CV folder on the same splits: each fold not yet begun continues from its last "
                        "checkpoint there (epochs count on; best validation Dice reset)")
    _add_training_options(p)
    p.set_defaults(func=cmd_cv)

    p = sub.add_parser("check-data", help="verify a data set before training",
                       description="Checks every image/label pair: geometry, label values, NaN, empty labels.")
    p.add_argument("data")
    p.add_argument("--layout", default=None)
    p.set_defaults(func=cmd_check_data)

    p = sub.add_parser("info", help="parameters, size and FLOPs of each model")
    p.add_argument("--shape", type=int, nargs=3, default=(39, 305, 305), metavar=("D", "H", "W"))
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("export", help="export a checkpoint to ONNX, or slim it for shipping",
                       description="Export a checkpoint to ONNX (dynamic slices and size) and/or a slim .pt "
                                   "without optimiser state.")
    p.add_argument("--model", default=None, help="checkpoint (default: shipped model)")
    p.add_argument("--onnx", help="ONNX file to write")
    p.add_argument("--pt", help="slim inference checkpoint to write")
    p.add_argument("--int8", help="ONNX file to write with 8-bit integer weights and activations: about 40%% less "
                                  "network time on CPUs with VNNI, Dice within 0.1 point (docs/model-card.md)")
    p.add_argument("--calibrate", nargs="+", metavar="SCANS",
                   help="scan files, or data-set folders (their first 3 scans), that set --int8's activation ranges")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("benchmark", help="the paper's Table 2 on this machine")
    p.add_argument("--data", default="../shared/data/lumbar-t2")
    p.add_argument("--json")
    p.add_argument("--markdown")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per measurement, after one warm-up (default 3)")
    p.set_defaults(func=cmd_benchmark)

    p = sub.add_parser("demo", help="the main job end to end on a synthetic cohort or a data set")
    p.add_argument("--data", default=None, help="data set to run on (default: synthetic phantoms)")
    p.add_argument("--out", default="demo-output")
    p.add_argument("--train", action="store_true", help="train a brief model even with --data")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except InputError as err:
        print(f"saunet: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("saunet: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
