"""``saunet benchmark``: the paper's Table 2 on this machine, and the CPU inference paths compared.

Each (model, shape) inference measurement runs in a fresh subprocess so that its peak resident memory is
its own. A benchmark measures; no test asserts a time.
"""

from __future__ import annotations

import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from saunet.evaluation import write_json
from saunet.models import MODELS, count_flops, count_parameters, create
from saunet.reports import markdown_table, write_text

SHAPES = {"lumbar 39x305x305": (39, 305, 305), "SpineSegT2W 15x512x512": (15, 512, 512)}
STOCK_UNET2D = (16, 32, 64, 128, 256, 16)  # the reference: MONAI BasicUNet at full resolution


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure_inference(model_name: str, shape: tuple[int, int, int], repeats: int, model_kwargs: dict | None = None,
                      bf16: bool = False, channels_last: bool = False) -> dict:
    """Forward-pass seconds (median) and peak memory of one model on one volume, in this process."""
    torch.manual_seed(0)
    model = create(model_name, **(model_kwargs or {})).eval()
    x = torch.randn(1, 1, *shape)
    if channels_last and model_name != "unet3d":
        model = model.to(memory_format=torch.channels_last)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def run():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            model(x)

    seconds = _median_seconds(run, repeats)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "peak_mb": peak / 1024, "added_mb": (peak - baseline) / 1024}


def _measure_in_subprocess(model_name: str, shape, repeats: int, **options) -> dict:
    code = ("import json, sys, torch; torch.set_num_threads(torch.get_num_threads());"
            "from saunet.benchmark import measure_inference;"
            f"print(json.dumps(measure_inference({model_name!r}, {tuple(shape)!r}, {repeats}, **{options!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def peak_gflops(dtype: torch.dtype, size: int = 2048, repeats: int = 3) -> float:
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    seconds = _median_seconds(lambda: a @ b, repeats)
    return 2 * size**3 / seconds / 1e9


def training_seconds_per_epoch(model_name: str, data: Path, steps: int = 4) -> float:
    """Seconds of one training epoch (the CV configuration: 30 steps of 2 stacks) on the real data."""
    from saunet.datasets import list_cases
    from saunet.training import TrainConfig, prepare_cases, training_step

    config = TrainConfig(model=model_name, loss="dice-bce", lr=1e-3)
    cases = prepare_cases(list_cases(data)[:4], config, progress=False)
    model = create(model_name).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    rng = np.random.default_rng(0)

    def step():
        training_step(model, optimizer, cases, config, rng, torch.device("cpu"))

    step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps * config.steps_per_epoch


def segment_process_seconds(scan: Path, model: Path | None, repeats: int = 3) -> float:
    """Wall time of the whole `saunet segment` process on one scan (reading, model, writing)."""
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            command = [sys.executable, "-m", "saunet.cli", "segment", str(scan), "-o", f"{tmp}/seg.nii.gz"]
            if model:
                command += ["--model", str(model)]
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def run_benchmark(data: Path, json_path: Path | None, markdown_path: Path | None, command: str, repeats: int = 5) -> dict:
    from tqdm import tqdm

    results: dict = {"command": command, "machine": f"{platform.processor() or platform.machine()}, "
                     f"{torch.get_num_threads()} threads, torch {torch.__version__}", "models": {}}
    results["peak_gflops"] = {"float32": peak_gflops(torch.float32), "bfloat16": peak_gflops(torch.bfloat16, size=512)}
    # Without native bf16 instructions a bf16 product is emulated and far slower than float32: skip those paths.
    results["bf16_native"] = results["peak_gflops"]["bfloat16"] > results["peak_gflops"]["float32"]
    for name in tqdm(list(MODELS), desc="models"):
        model = create(name)
        row = {"parameters": count_parameters(model), "size_mb": count_parameters(model) * 4 / 2**20}
        for label, shape in SHAPES.items():
            measured = _measure_in_subprocess(name, shape, repeats)
            flops = count_flops(model, (1, 1, *shape))
            row[label] = {**measured, "gflop": flops / 1e9, "gflops_per_s": flops / 1e9 / measured["seconds"]}
        row["train_seconds_per_epoch"] = training_seconds_per_epoch(name, data)
        results["models"][name] = row
    lumbar = SHAPES["lumbar 39x305x305"]
    stock = _measure_in_subprocess("unet2d", (lumbar[0], 304, 304), repeats, model_kwargs={"features": STOCK_UNET2D})
    results["stock_unet2d_full_resolution_seconds"] = stock["seconds"]
    scans = sorted((data / "imagesTr").glob("*.nii.gz"))
    results["segment_process_seconds"] = segment_process_seconds(scans[0], None)
    results["cpu_paths"] = cpu_paths(lumbar, repeats, results["bf16_native"])
    results["pipeline_paths"] = pipeline_paths(scans[:3], results["bf16_native"])
    if json_path:
        write_json(results, json_path)
    text = benchmark_markdown(results)
    if markdown_path:
        write_text(text, markdown_path)
    print(text)
    return results


def cpu_paths(shape, repeats: int, bf16: bool) -> dict:
    """SAU-Net forward seconds on the network grid of a lumbar scan (2.5 mm in-plane) for each CPU path."""
    grid = (shape[0], round(shape[1] * 1.25 / 2.5), round(shape[2] * 1.25 / 2.5))
    paths = {
        "float32": {},
        "channels-last": {"channels_last": True},
    }
    if bf16:
        paths["bf16 autocast"] = {"bf16": True}
    out = {name: _measure_in_subprocess("sau-net", grid, repeats, **options)["seconds"] for name, options in paths.items()}
    out["full resolution float32 (no resampling)"] = _measure_in_subprocess("sau-net", shape, repeats)["seconds"]
    return out


def pipeline_paths(scans: list[Path], bf16: bool) -> dict:
    """Seconds per scan of ``Segmenter.segment`` (in-process: preprocessing, model, inverse, post-processing)
    with the shipped model for each inference path, and the Dice of its masks against the float32 path's."""
    from saunet.evaluation import overlap_metrics
    from saunet.export import export_onnx
    from saunet.imageio import read_volume
    from saunet.inference import DEFAULT_MODEL, Segmenter

    volumes = [read_volume(p) for p in scans]
    with tempfile.TemporaryDirectory() as tmp:
        segmenters = {"float32": Segmenter(DEFAULT_MODEL, channels_last=False),
                      "channels-last": Segmenter(DEFAULT_MODEL),
                      "ONNX Runtime": Segmenter(export_onnx(DEFAULT_MODEL, Path(tmp) / "model.onnx"))}
        if bf16:
            segmenters["bf16 autocast"] = Segmenter(DEFAULT_MODEL, bf16=True)
        reference = [segmenters["float32"].segment(v).labels for v in volumes]
        out = {}
        for name, segmenter in segmenters.items():
            segmenter.segment(volumes[0])  # warm-up
            times, dice = [], []
            for volume, ref in zip(volumes, reference):
                started = time.perf_counter()
                labels = segmenter.segment(volume).labels
                times.append(time.perf_counter() - started)
                dice.append(overlap_metrics(labels > 0, ref > 0)["dice"])
            out[name] = {"seconds": statistics.median(times), "min_dice_vs_float32": min(dice)}
    return out


def benchmark_markdown(results: dict) -> str:
    models = results["models"]
    rows = []
    for name, row in models.items():
        lumbar, big = row["lumbar 39x305x305"], row["SpineSegT2W 15x512x512"]
        rows.append([name, f"{row['parameters'] / 1e6:.2f} M", f"{row['size_mb']:.1f}",
                     f"{lumbar['gflop']:.0f}", f"{lumbar['seconds']:.2f}", f"{lumbar['peak_mb']:.0f}",
                     f"{big['gflop']:.0f}", f"{big['seconds']:.2f}", f"{big['peak_mb']:.0f}",
                     f"{row['train_seconds_per_epoch']:.0f}",
                     f"{lumbar['gflops_per_s']:.0f} ({lumbar['gflops_per_s'] / results['peak_gflops']['float32']:.0%})"])
    header = ["model", "parameters", "size (MB)", "GFLOP 39x305x305", "s 39x305x305", "peak MB",
              "GFLOP 15x512x512", "s 15x512x512", "peak MB", "train s/epoch", "GFLOP/s (of fp32 peak)"]
    sau, u3, dense = models["sau-net"], models["unet3d"], models["dense-unet"]
    key = "lumbar 39x305x305"
    ratios = [
        ["sau-net / unet3d inference time", f"{sau[key]['seconds'] / u3[key]['seconds']:.2f}", "≤ 0.40"],
        ["sau-net / dense-unet inference time", f"{sau[key]['seconds'] / dense[key]['seconds']:.2f}", "≤ 1.10"],
        ["sau-net / unet3d peak memory", f"{sau[key]['peak_mb'] / u3[key]['peak_mb']:.2f}", "≤ 0.50"],
        ["`saunet segment` (whole process) / stock 2D U-Net forward",
         f"{results['segment_process_seconds'] / results['stock_unet2d_full_resolution_seconds']:.2f}", "≤ 0.35"],
    ]
    paths = [[name, f"{s:.2f}"] for name, s in results["cpu_paths"].items()]
    return "\n".join([
        "# Benchmark: the paper's Table 2 on this machine\n",
        f"Command: `{results['command']}`  \nMachine: {results['machine']}  \n"
        f"Peak of a square matrix product: {results['peak_gflops']['float32']:.0f} GFLOP/s float32 (2048²), "
        f"{results['peak_gflops']['bfloat16']:.1f} GFLOP/s bfloat16 (512²)"
        + ("" if results["bf16_native"] else
           ": this CPU has no native bf16 arithmetic, so the bf16 paths are not used") + ".\n",
        "Inference: one forward pass (median of repeated runs after a warm-up) on a random volume of that shape at "
        "full resolution, each in its own process; peak MB is that process's peak resident memory. Training: one "
        "epoch of the cross-validation configuration (30 steps of 2 stacks) on ../shared/data/lumbar-t2.\n",
        markdown_table(header, rows),
        "## Ratios (targets from the performance issue)\n",
        markdown_table(["ratio", "measured", "target"], ratios),
        f"Stock MONAI 2D BasicUNet{STOCK_UNET2D}, 39 slices of 304x304: "
        f"{results['stock_unet2d_full_resolution_seconds']:.2f} s. `saunet segment` on one lumbar scan, whole process "
        f"(start-up, reading, 2.5 mm in-plane resampling, SAU-Net, post-processing, writing): "
        f"{results['segment_process_seconds']:.2f} s.\n",
        "## SAU-Net CPU paths (forward seconds on a 39x152x152 network grid unless stated)\n",
        markdown_table(["path", "seconds"], paths),
        "## The segmentation pipeline with the shipped model, per inference path (3 real scans)\n",
        markdown_table(["path", "seconds per scan", "lowest Dice against float32 masks"],
                       [[name, f"{r['seconds']:.2f}", f"{r['min_dice_vs_float32']:.4f}"]
                        for name, r in results["pipeline_paths"].items()]),
    ])
