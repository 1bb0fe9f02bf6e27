"""The benchmark's plumbing on tiny inputs; no test asserts a time (the benchmark measures, tests check)."""

import pytest

from saunet.experiments.benchmark import SHAPES, InferenceWorker, benchmark_markdown, measure_inference, paired_seconds

TINY = {"features": (4, 8, 16), "growth": 4}


@pytest.mark.parametrize(("runtime", "chunk"), [("torch", 0), ("onnx", 0), ("onnx", 2)])
def test_measure_inference_runs_every_path(runtime, chunk):
    measured = measure_inference("sau-net", (5, 24, 24), repeats=1, model_kwargs=TINY, runtime=runtime, chunk=chunk)
    assert measured["seconds"] > 0 and measured["peak_mb"] > 0


def test_markdown_reports_the_ratios_of_both_runtimes():
    def model(seconds, mb):
        shape = {"gflop": 10.0, "onnx": {"seconds": seconds, "peak_mb": mb, "gflops_per_s": 10 / seconds},
                 "torch": {"seconds": 2 * seconds, "peak_mb": 2 * mb, "gflops_per_s": 5 / seconds}}
        return {"parameters": 1e6, "size_mb": 4.0, "train_seconds_per_epoch": 30.0, **{k: shape for k in SHAPES}}

    results = {"command": "saunet benchmark", "machine": "test", "chunk_slices": 16, "bf16_native": False,
               "peak_gflops": {"float32": 100.0, "bfloat16": 1.0},
               "models": {"sau-net": model(1.0, 100), "dense-unet": model(0.9, 100), "unet2d": model(1.0, 100),
                          "unet3d": model(4.0, 400)},
               "whole_volume_onnx_seconds": {"sau-net": 2.1, "dense-unet": 2.0},
               "stock_unet2d_full_resolution_seconds": 10.0, "segment_process_seconds": 3.0,
               "cpu_paths": {"ONNX Runtime": {"seconds": 1.0, "peak_mb": 50}},
               "pipeline_paths": {"ONNX Runtime": {"seconds": 1.0, "min_dice_vs_float32": 1.0}},
               "steal_fraction": 0.25,
               "paired": {k: {"a_seconds": 1.0, "b_seconds": 2.0, "ratio": r, "rounds": 7}
                          for k, r in (("sau-net / unet3d", 0.39), ("sau-net / dense-unet", 1.08),
                                       ("segment process / stock", 0.34))}}
    results["training"] = {"stack": [16, 160, 160],
                           "paired": {"sau-net / unet3d": {"a_seconds": 1.0, "b_seconds": 2.5, "ratio": 0.42, "rounds": 7},
                                      "sau-net / dense-unet": {"a_seconds": 1.0, "b_seconds": 0.9, "ratio": 1.06,
                                                               "rounds": 7}},
                           "epoch_seconds": {"lumbar-t2": {"plain NCHW": 40.0, "channels-last": 30.0}}}
    text = benchmark_markdown(results)
    assert "| sau-net / unet3d | 1.00 | 2.50 | 0.42 | ≤ 0.50 (paper 0.33) |" in text
    assert "| lumbar-t2 | 40.0 | 30.0 | 0.75 |" in text
    assert "(steal): 25%" in text
    assert "| sau-net / unet3d inference time | 0.25 | 0.39 | 0.25 | ≤ 0.40 |" in text
    assert "| sau-net / dense-unet inference time | 1.11 | 1.08 | 1.11 | ≤ 1.10 |" in text
    assert "| sau-net / dense-unet, ONNX on the whole volume (no chunks) | 1.05 |" in text
    assert "| `saunet segment` (whole process) / stock 2D U-Net forward | 0.30 | 0.34 |" in text


def test_paired_seconds_alternates_and_takes_the_median_of_per_round_ratios():
    calls = []
    a_times, b_times = iter([1.0, 2.0, 3.0]), iter([2.0, 2.0, 2.0])

    def a():
        calls.append("a")
        return next(a_times)

    def b():
        calls.append("b")
        return next(b_times)

    paired = paired_seconds(a, b, rounds=3)
    assert calls == ["a", "b"] * 3
    assert paired["ratio"] == 1.0 and paired["a_seconds"] == 2.0 and paired["b_seconds"] == 2.0


def test_inference_worker_times_a_warm_model_on_request():
    worker = InferenceWorker("sau-net", (3, 16, 16), model_kwargs=TINY, runtime="onnx", chunk=2)
    try:
        assert worker() > 0 and worker() > 0
    finally:
        worker.close()
    assert worker.process.returncode == 0
