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

from saunet.experiments.reports import markdown_table
from saunet.files import write_json, write_text
from saunet.models import MODELS, count_flops, count_parameters, create

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


def _inference_runner(model_name: str, shape: tuple[int, int, int], model_kwargs: dict | None = None,
                      bf16: bool = False, channels_last: bool = False, runtime: str = "torch", chunk: int = 0,
                      compiled: bool = False):
    """A function that runs one forward pass of ``model_name`` on a random volume of ``shape``, as deployed.

    ``runtime`` "torch" runs eager PyTorch, "onnx" an ONNX Runtime session of the same weights; ``chunk`` > 0
    runs per-slice models on chunks of that many slices as ``saunet segment`` does (``predict_logits``).
    """
    from saunet.inference import OnnxModel, TorchModel, predict_logits

    torch.manual_seed(0)
    model = create(model_name, **(model_kwargs or {})).eval()
    x = np.random.default_rng(0).normal(size=(1, 1, *shape)).astype(np.float32)
    if runtime == "onnx":
        from saunet.export import export_module_onnx

        with tempfile.TemporaryDirectory() as tmp:
            path = export_module_onnx(model, Path(tmp) / "model.onnx")
            runner = OnnxModel(path)
        del model
    else:
        if channels_last and not model.volumetric:
            model = model.to(memory_format=torch.channels_last)
        if compiled:
            model = torch.compile(model, dynamic=False)
        runner = TorchModel(model, "cpu", bf16)
    return lambda: predict_logits(runner, x, runner.slice_halo, chunk)


def measure_inference(model_name: str, shape: tuple[int, int, int], repeats: int, **options) -> dict:
    """Forward-pass seconds (median after a warm-up) and peak memory of one model on one volume, in this
    process; ``options`` as :func:`_inference_runner`."""
    run = _inference_runner(model_name, shape, **options)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds = _median_seconds(run, repeats)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "peak_mb": peak / 1024, "added_mb": (peak - baseline) / 1024}


def _measure_in_subprocess(model_name: str, shape, repeats: int, **options) -> dict:
    code = ("import json, sys, torch; torch.set_num_threads(torch.get_num_threads());"
            "from saunet.experiments.benchmark import measure_inference;"
            f"print(json.dumps(measure_inference({model_name!r}, {tuple(shape)!r}, {repeats}, **{options!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _training_runner(model_name: str, shape: tuple[int, int, int], channels_last: bool = True,
                     model_kwargs: dict | None = None):
    """A function that runs one training step of ``model_name`` (forward, BCE loss, backward, Adam) on a fixed
    random stack of ``shape``, as :func:`saunet.training.training_step` does, in the training memory format."""
    from saunet.training import segmentation_loss, training_form

    torch.manual_seed(0)
    model = training_form(create(model_name, **(model_kwargs or {})), channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.randn(1, 1, *shape)
    target = (torch.rand(1, 1, *shape) > 0.7).float()

    def step():
        loss = segmentation_loss(model(x), target, "bce")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def serve_inference(model_name: str, shape, training: bool = False, **options) -> None:
    """Worker loop: warm up, then time one forward pass (or, with ``training``, one training step) per line
    read from stdin, printing the seconds."""
    run = (_training_runner if training else _inference_runner)(model_name, shape, **options)
    run()
    print("ready", flush=True)
    for _ in sys.stdin:
        started = time.perf_counter()
        run()
        print(time.perf_counter() - started, flush=True)


class InferenceWorker:
    """A subprocess holding one model and its input, warmed up, that times one forward pass (``training=True``:
    one training step) on request."""

    def __init__(self, model_name: str, shape, **options):
        code = (f"from saunet.experiments.benchmark import serve_inference; serve_inference({model_name!r}, {tuple(shape)!r}, "
                f"**{options!r})")
        self.process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True)
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"benchmark worker for {model_name} failed to start")

    def __call__(self) -> float:
        self.process.stdin.write("run\n")
        self.process.stdin.flush()
        return float(self.process.stdout.readline())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def paired_seconds(a, b, rounds: int) -> dict:
    """Time ``a`` and ``b`` (callables returning seconds) alternately, ``rounds`` times each.

    On a shared virtual machine the speed drifts by 10-20 % within minutes; the ratio of two runs made seconds
    apart cancels most of it, so the ratio reported is the median of the per-round ratios.
    """
    times_a, times_b = [], []
    for _ in range(rounds):
        times_a.append(a())
        times_b.append(b())
    return {"a_seconds": statistics.median(times_a), "b_seconds": statistics.median(times_b),
            "ratio": statistics.median(x / y for x, y in zip(times_a, times_b)), "rounds": rounds}


def paired_model_ratio(model_a: str, model_b: str, shape, rounds: int, **options) -> dict:
    workers = [InferenceWorker(model_a, shape, **options), InferenceWorker(model_b, shape, **options)]
    try:
        return paired_seconds(*workers, rounds)
    finally:
        for worker in workers:
            worker.close()


def peak_gflops(dtype: torch.dtype, size: int = 2048, repeats: int = 3) -> float:
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    seconds = _median_seconds(lambda: a @ b, repeats)
    return 2 * size**3 / seconds / 1e9


def training_seconds_per_epoch(model_name: str, data: Path, steps: int = 2, channels_last: bool = True) -> float:
    """Seconds of one training epoch of the default configuration (``TrainConfig``) on the real data, sampling
    and augmentation included."""
    from saunet.datasets import list_cases
    from saunet.training import TrainConfig, prepare_cases, sample_batch, training_form, training_step

    config = TrainConfig(model=model_name, loss="dice-bce", lr=1e-3, channels_last=channels_last)
    cases = prepare_cases(list_cases(data)[:4], config, progress=False)
    model = training_form(create(model_name), channels_last).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    rng = np.random.default_rng(0)

    def step():
        training_step(model, optimizer, sample_batch(cases, config, rng), config, rng, torch.device("cpu"))

    step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps * config.steps_per_epoch


def segment_process_seconds(scan: Path, models: list[Path] = (), repeats: int = 3) -> float:
    """Wall time of the whole `saunet segment` process on one scan (reading, model, writing); ``models``: its
    --model files (none: the shipped model)."""
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            command = [sys.executable, "-m", "saunet.cli", "segment", str(scan), "-o", f"{tmp}/seg.nii.gz"]
            for model in models:
                command += ["--model", str(model)]
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def _cpu_times() -> list[int] | None:
    """The machine's cumulative CPU times from /proc/stat (user, nice, system, idle, iowait, irq, softirq, steal, ...)."""
    try:
        return [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None


def run_benchmark(data: Path, json_path: Path | None, markdown_path: Path | None, command: str, repeats: int = 3) -> dict:
    from tqdm import tqdm

    from saunet.inference import CHUNK_SLICES

    times_before = _cpu_times()
    results: dict = {"command": command, "machine": f"{platform.processor() or platform.machine()}, "
                     f"{torch.get_num_threads()} threads, torch {torch.__version__}", "models": {},
                     "chunk_slices": CHUNK_SLICES}
    results["peak_gflops"] = {"float32": peak_gflops(torch.float32), "bfloat16": peak_gflops(torch.bfloat16, size=512)}
    # Without native bf16 instructions a bf16 product is emulated and far slower than float32: skip those paths.
    results["bf16_native"] = results["peak_gflops"]["bfloat16"] > results["peak_gflops"]["float32"]
    for name in tqdm(list(MODELS), desc="models"):
        model = create(name)
        row = {"parameters": count_parameters(model), "size_mb": count_parameters(model) * 4 / 2**20}
        for label, shape in SHAPES.items():
            flops = count_flops(model, (1, 1, *shape)) / 1e9
            row[label] = {"gflop": flops}
            # Eager PyTorch at the lumbar size only: it is the slow reference, the deployed path is ONNX.
            paths = [("onnx", CHUNK_SLICES), ("torch", 0)] if label.startswith("lumbar") else [("onnx", CHUNK_SLICES)]
            for runtime, chunk in paths:
                measured = _measure_in_subprocess(name, shape, repeats, runtime=runtime, chunk=chunk)
                row[label][runtime] = {**measured, "gflops_per_s": flops / measured["seconds"]}
        row["train_seconds_per_epoch"] = training_seconds_per_epoch(name, data)
        results["models"][name] = row
    lumbar = SHAPES["lumbar 39x305x305"]
    # The attention's own cost, without chunks.
    results["whole_volume_onnx_seconds"] = {name: _measure_in_subprocess(name, lumbar, repeats, runtime="onnx")["seconds"]
                                            for name in ("sau-net", "dense-unet")}
    stock = _measure_in_subprocess("unet2d", (lumbar[0], 304, 304), repeats, model_kwargs={"features": STOCK_UNET2D})
    results["stock_unet2d_full_resolution_seconds"] = stock["seconds"]
    scans = sorted((data / "imagesTr").glob("*.nii.gz"))
    results["segment_process_seconds"] = segment_process_seconds(scans[0])
    results["paired"] = paired_ratios(scans[0], lumbar, rounds=2 * repeats + 1)
    results["training"] = training_costs(data, rounds=2 * repeats + 1)
    results["cpu_paths"] = cpu_paths(lumbar, repeats, results["bf16_native"])
    results["pipeline_paths"] = pipeline_paths(scans[:3], results["bf16_native"])
    times_after = _cpu_times()
    if times_before and times_after and len(times_after) > 7:
        spent = [b - a for a, b in zip(times_before, times_after)]
        # On a virtual machine, the share of CPU time the hypervisor gave to other guests during the run.
        results["steal_fraction"] = spent[7] / max(1, sum(spent[:8]))
    if json_path:
        write_json(results, json_path)
    text = benchmark_markdown(results)
    if markdown_path:
        write_text(text, markdown_path)
    print(text)
    return results


TRAIN_STACK = (16, 160, 160)  # the training-cost issue's stack


def paired_training_ratios(shape, rounds: int) -> dict:
    """The training-cost issue's ratios: one training step on the same stack, the two models taking turns in
    two warm processes; SAU-Net both in the training form and in the plain one (NCHW) it replaced."""
    ratios = {}
    for (a, a_options), b in (((("sau-net", {})), "unet3d"), ((("sau-net", {})), "dense-unet"),
                              ((("sau-net", {"channels_last": False})), "unet3d")):
        name = f"{a}{'' if a_options.get('channels_last', True) else ' (plain NCHW)'} / {b}"
        workers = [InferenceWorker(a, shape, training=True, **a_options), InferenceWorker(b, shape, training=True)]
        try:
            ratios[name] = paired_seconds(*workers, rounds)
        finally:
            for worker in workers:
                worker.close()
    return ratios


def training_costs(data: Path, rounds: int) -> dict:
    """The training-cost issue's figures: paired training-step ratios on one stack, and SAU-Net's seconds per
    epoch of the default recipe in the plain and the channels-last training form, on every data set beside
    ``data`` (lumbar-t2 and lumbar-water-fat)."""
    sets = [d for d in sorted(data.parent.iterdir()) if (d / "imagesTr").is_dir()]
    return {"stack": list(TRAIN_STACK), "paired": paired_training_ratios(TRAIN_STACK, rounds),
            "epoch_seconds": {d.name: {form: training_seconds_per_epoch("sau-net", d, steps=5, channels_last=cl)
                                       for form, cl in (("plain NCHW", False), ("channels-last", True))}
                              for d in sets}}


def paired_ratios(scan: Path, shape, rounds: int) -> dict:
    """The performance issue's time ratios, each measured by alternating its two sides (:func:`paired_seconds`)."""
    from saunet.inference import CHUNK_SLICES

    deployed = {"runtime": "onnx", "chunk": CHUNK_SLICES}
    stock = InferenceWorker("unet2d", (shape[0], 304, 304), model_kwargs={"features": STOCK_UNET2D})
    try:
        segment_vs_stock = paired_seconds(lambda: segment_process_seconds(scan, repeats=1), stock, rounds)
    finally:
        stock.close()
    return {"sau-net / unet3d": paired_model_ratio("sau-net", "unet3d", shape, rounds, **deployed),
            "sau-net / dense-unet": paired_model_ratio("sau-net", "dense-unet", shape, rounds, **deployed),
            "segment process / stock": segment_vs_stock}


def cpu_paths(shape, repeats: int, bf16: bool) -> dict:
    """SAU-Net forward seconds and peak MB on the network grid of a lumbar scan (default in-plane spacing) per CPU path."""
    from saunet.inference import CHUNK_SLICES
    from saunet.orientation import stored_layout
    from saunet.preprocessing import PreprocessingSettings, Preprocessor

    lumbar_spacing = (2.0, 1.25, 1.25)
    grid = Preprocessor(PreprocessingSettings()).grid(shape, lumbar_spacing, stored_layout(0)).network_shape
    paths = {
        "PyTorch float32": {},
        "PyTorch channels-last": {"channels_last": True},
        "PyTorch channels-last + torch.compile": {"channels_last": True, "compiled": True},
        "ONNX Runtime": {"runtime": "onnx"},
        f"ONNX Runtime, chunks of {CHUNK_SLICES} slices": {"runtime": "onnx", "chunk": CHUNK_SLICES},
    }
    if bf16:
        paths["PyTorch bf16 autocast"] = {"bf16": True}
    out = {name: _measure_in_subprocess("sau-net", grid, repeats, **options) for name, options in paths.items()}
    out["PyTorch float32 at full resolution (no resampling)"] = _measure_in_subprocess("sau-net", shape, repeats)
    return out


def pipeline_paths(scans: list[Path], bf16: bool) -> dict:
    """Seconds per scan of ``Segmenter.segment`` (in-process: preprocessing, model, inverse, post-processing)
    with the shipped model for each inference path, and the Dice of its masks against the float32 path's."""
    from saunet.evaluation import overlap_metrics
    from saunet.export import export_onnx
    from saunet.imageio import read_volume
    from saunet.inference import CHUNK_SLICES, DEFAULT_MODEL, Segmenter

    volumes = [read_volume(p) for p in scans]
    with tempfile.TemporaryDirectory() as tmp:
        onnx = export_onnx(DEFAULT_MODEL, Path(tmp) / "model.onnx")
        segmenters = {"PyTorch float32": Segmenter(DEFAULT_MODEL, channels_last=False, chunk_slices=0),
                      "PyTorch channels-last": Segmenter(DEFAULT_MODEL, chunk_slices=0),
                      "ONNX Runtime, whole volume": Segmenter(onnx, chunk_slices=0),
                      f"ONNX Runtime, chunks of {CHUNK_SLICES} slices (default)": Segmenter(onnx)}
        if bf16:
            segmenters["PyTorch bf16 autocast"] = Segmenter(DEFAULT_MODEL, bf16=True, chunk_slices=0)
        reference = [segmenters["PyTorch float32"].segment(v).labels for v in volumes]
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


def training_markdown(training: dict | None) -> list[str]:
    if not training:
        return []
    stack = "x".join(map(str, training["stack"]))
    rows = [[name, f"{r['a_seconds']:.2f}", f"{r['b_seconds']:.2f}", f"{r['ratio']:.2f}",
             {"sau-net / unet3d": "≤ 0.50 (paper 0.33)", "sau-net / dense-unet": "≤ 1.10"}.get(name, "")]
            for name, r in training["paired"].items()]
    epochs = [[name, *(f"{v:.1f}" for v in forms.values()), f"{forms['channels-last'] / forms['plain NCHW']:.2f}"]
              for name, forms in training["epoch_seconds"].items()]
    return [
        f"## Training cost (one step: forward, loss, backward, Adam, on one {stack} stack)\n",
        "Paired as above, each model in its own warm process, in its training form (the 2D models channels-last, "
        "`saunet.training.training_form`); the last row is SAU-Net in the plain NCHW form it had before.\n",
        markdown_table(["ratio", "s first", "s second", "paired ratio", "target"], rows),
        "SAU-Net seconds per epoch of the default recipe (40 steps of 4 stacks of 3 slices, 160x160 crops, sampling "
        "and augmentation included; 4 scans of each set, median of 5 steps):\n",
        markdown_table(["data set", "plain NCHW", "channels-last", "ratio"], epochs),
    ]


def benchmark_markdown(results: dict) -> str:
    models, peak = results["models"], results["peak_gflops"]["float32"]
    chunk = results["chunk_slices"]
    rows = []
    for name, row in models.items():
        cells = [name, f"{row['parameters'] / 1e6:.2f} M", f"{row['size_mb']:.1f}"]
        for label in SHAPES:
            m = row[label]
            cells += [f"{m['gflop']:.0f}", f"{m['onnx']['seconds']:.2f}", f"{m['onnx']['peak_mb']:.0f}"]
        lumbar = row["lumbar 39x305x305"]
        cells += [f"{lumbar['torch']['seconds']:.2f}", f"{lumbar['torch']['peak_mb']:.0f}"]
        cells += [f"{row['train_seconds_per_epoch']:.0f}",
                  f"{lumbar['onnx']['gflops_per_s']:.0f} ({lumbar['onnx']['gflops_per_s'] / peak:.0%})",
                  f"{lumbar['torch']['gflops_per_s']:.0f} ({lumbar['torch']['gflops_per_s'] / peak:.0%})"]
        rows.append(cells)
    header = ["model", "parameters", "size (MB)"]
    for label in ("39x305x305", "15x512x512"):
        header += [f"GFLOP {label}", f"s ONNX {label}", "peak MB"]
    header += ["s PyTorch 39x305x305", "peak MB"]
    header += ["train s/epoch", "GFLOP/s ONNX (of fp32 peak)", "GFLOP/s PyTorch"]
    sau, u3, dense = models["sau-net"], models["unet3d"], models["dense-unet"]
    key = "lumbar 39x305x305"

    def ratio(a, b, runtime, what):
        return f"{a[key][runtime][what] / b[key][runtime][what]:.2f}"

    paired = {k: f"{v['ratio']:.2f}" for k, v in results["paired"].items()}
    ratios = [
        ["sau-net / unet3d inference time", ratio(sau, u3, "onnx", "seconds"), paired["sau-net / unet3d"],
         ratio(sau, u3, "torch", "seconds"), "≤ 0.40"],
        ["sau-net / dense-unet inference time", ratio(sau, dense, "onnx", "seconds"), paired["sau-net / dense-unet"],
         ratio(sau, dense, "torch", "seconds"), "≤ 1.10"],
        ["sau-net / dense-unet, ONNX on the whole volume (no chunks)",
         f"{results['whole_volume_onnx_seconds']['sau-net'] / results['whole_volume_onnx_seconds']['dense-unet']:.2f}",
         "", "", "≤ 1.10"],
        ["sau-net / unet3d peak memory", ratio(sau, u3, "onnx", "peak_mb"), "", ratio(sau, u3, "torch", "peak_mb"), "≤ 0.50"],
        ["`saunet segment` (whole process) / stock 2D U-Net forward",
         f"{results['segment_process_seconds'] / results['stock_unet2d_full_resolution_seconds']:.2f}",
         paired["segment process / stock"], "", "≤ 0.35"],
    ]
    paths = [[name, f"{r['seconds']:.2f}", f"{r['peak_mb']:.0f}"] for name, r in results["cpu_paths"].items()]
    return "\n".join([
        "# Benchmark: the paper's Table 2 on this machine\n",
        f"Command: `{results['command']}`  \nMachine: {results['machine']}  \n"
        f"Peak of a square matrix product: {peak:.0f} GFLOP/s float32 (2048²), "
        f"{results['peak_gflops']['bfloat16']:.1f} GFLOP/s bfloat16 (512²)"
        + ("" if results["bf16_native"] else
           ": this CPU has no native bf16 arithmetic, so the bf16 paths are not used") + ".  \n"
        + (f"CPU time taken by the hypervisor during the run (steal): {results['steal_fraction']:.0%}; on a shared "
           "virtual machine timings vary by 10 % and more between runs, so compare ratios within one run.\n"
           if "steal_fraction" in results else "\n"),
        "Inference: one forward pass (median of repeated runs after a warm-up) on a random volume of that shape at "
        "full resolution, each measurement in its own process; peak MB is that process's peak resident memory. "
        f"'ONNX' is the deployed path: ONNX Runtime, and the per-slice models run on chunks of {chunk} slices; "
        "SAU-Net decodes each chunk on its own and then adds to the two slices either side of each chunk boundary "
        "the attention terms they missed, which gives the whole-volume output; the 3D U-Net runs on the whole volume. "
        "'PyTorch' is eager PyTorch on the whole volume (lumbar size only). Training: one "
        "epoch of the default configuration (`TrainConfig`) on ../shared/data/lumbar-t2.\n",
        markdown_table(header, rows),
        "## Ratios (targets from the performance issue)\n",
        "'Paired' measures the two sides of a ratio alternately in two warm processes, "
        f"{results['paired']['sau-net / unet3d']['rounds']} rounds, and gives the median of the per-round ratios: "
        "the drift of a shared machine's speed cancels. The other columns divide medians measured minutes apart.\n",
        markdown_table(["ratio", "ONNX (deployed)", "ONNX paired", "PyTorch", "target"], ratios),
        f"Stock MONAI 2D BasicUNet{STOCK_UNET2D}, 39 slices of 304x304, eager PyTorch: "
        f"{results['stock_unet2d_full_resolution_seconds']:.2f} s. `saunet segment` on one lumbar scan, whole process "
        f"(start-up, reading, in-plane resampling to the model's spacing, SAU-Net with ONNX Runtime, post-processing, writing): "
        f"{results['segment_process_seconds']:.2f} s.\n",
        "## SAU-Net CPU paths (one forward pass on the network grid of a lumbar scan, 39x203x203, unless stated)\n",
        markdown_table(["path", "seconds", "peak MB"], paths),
        "## The segmentation pipeline with the shipped model, per inference path (3 real scans)\n",
        markdown_table(["path", "seconds per scan", "lowest Dice against float32 masks"],
                       [[name, f"{r['seconds']:.2f}", f"{r['min_dice_vs_float32']:.4f}"]
                        for name, r in results["pipeline_paths"].items()]),
        *training_markdown(results.get("training")),
        "What each speed-up bought, measured when it was made, and what was tried and not kept: "
        "[speed-ups.md](speed-ups.md).\n",
    ])
