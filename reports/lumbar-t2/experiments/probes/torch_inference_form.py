"""Eager PyTorch on CPU: the shipped SAU-Net in its training form against its concatenation-free inference_form,
on a 10x203x203 chunk, alternating rounds (argument: threads)."""
import time, sys, torch, numpy as np
from saunet.training import load_checkpoint, model_from_checkpoint
from saunet.export import inference_form
torch.set_num_threads(int(sys.argv[1]))
ck = load_checkpoint("src/saunet/weights/lumbar_t2_sau_net.pt")
train_form = model_from_checkpoint(ck).to(memory_format=torch.channels_last)
inf_form = inference_form(model_from_checkpoint(ck)).to(memory_format=torch.channels_last)
x = torch.randn(1, 1, 10, 203, 203)
with torch.inference_mode():
    a, b = train_form(x), inf_form(x)
    print("max diff", (a - b).abs().max().item())
    times = {"train": [], "inference": []}
    for r in range(5):
        for name, m in (("train", train_form), ("inference", inf_form)):
            t = time.perf_counter(); m(x); times[name].append(time.perf_counter() - t)
for k, v in times.items(): print(k, np.round(v, 3), "median", np.median(v))
print("ratio inference/train per round", np.round(np.array(times["inference"]) / np.array(times["train"]), 3))
