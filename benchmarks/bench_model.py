"""Model speed: forward ms per frame and training-step seconds (a 5-frame clip) for the
``paper`` and ``tiny`` configurations, on CPU (and CUDA where present), each measured for a
plain set-up (NCHW tensors, the model called as is) and for ours (channels-last weights and
activations, inference mode), side by side in one run, with the fraction of this machine's
convolution throughput (GFLOP/s of a large conv2d, measured here too) that each reaches.

    python benchmarks/bench_model.py [--repeats 3] [--configs paper tiny]
"""

import argparse

import torch
from common import best_of
from torch import nn

from vostutorial.fast import speed_up
from vostutorial.models import build_model
from vostutorial.models.summary import count_macs


def conv_gflops(device: str, repeats: int) -> float:
    """Throughput of a large 3x3 convolution, the ceiling these models can approach."""
    conv = nn.Conv2d(256, 256, 3, padding=1).to(device, memory_format=torch.channels_last)
    x = torch.randn(4, 256, 64, 112, device=device).contiguous(memory_format=torch.channels_last)
    flops = 2 * x.shape[0] * 256 * 64 * 112 * 256 * 9

    def run():
        with torch.inference_mode():
            conv(x)

    return flops / best_of(run, repeats, device) / 1e9


def measure(name: str, variant: str, device: str, repeats: int, t: int = 5):
    """(forward seconds per clip, training-step seconds per clip, FLOPs per clip)."""
    torch.manual_seed(0)
    model = build_model(name).to(device)
    if variant == "ours":
        model = speed_up(model)
    h, w = model.cfg.input_size
    frames = torch.rand(1, t, 3, h, w, device=device)
    mask = (torch.rand(1, 1, h, w, device=device) > 0.5).float()
    target = torch.rand(1, t, 1, h, w, device=device).round()
    flops = 2 * sum(count_macs(model.eval(), frames, mask).values())
    no_grad = torch.inference_mode if variant == "ours" else torch.no_grad

    def forward():
        with no_grad():
            model(frames, mask)

    opt = torch.optim.Adam(model.parameters(), lr=1e-5)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.binary_cross_entropy_with_logits(model(frames, mask), target)
        loss.backward()
        opt.step()

    tf = best_of(forward, repeats, device)
    model.train()
    ts = best_of(step, max(1, repeats - 1), device)
    return tf, ts, flops


def bench(name: str, device: str, repeats: int, peak: float, t: int = 5) -> None:
    results = {}
    for variant in ("plain", "ours"):
        tf, ts, flops = results[variant] = measure(name, variant, device, repeats, t)
        gflops = flops / tf / 1e9
        print(
            f"{name:6} {device:4} {variant:6} forward {1000 * tf / t:8.1f} ms/frame "
            f"({gflops:6.1f} GFLOP/s, {gflops / peak:4.0%} of conv peak)   "
            f"train step {ts:6.2f} s/clip of {t}"
        )
    (pf, ps, _), (of, os_, _) = results["plain"], results["ours"]
    print(
        f"{name:6} {device:4} speed-up over plain: forward {pf / of:.2f}x, "
        f"train step {ps / os_:.2f}x"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--configs", nargs="+", default=["tiny", "paper"])
    a = p.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        "reference: a plain implementation of the paper model measured here at about 0.85 s/frame "
        "forward and 10 s per 5-frame training step"
    )
    for device in devices:
        peak = conv_gflops(device, a.repeats)
        print(f"{device}: large conv2d throughput {peak:.1f} GFLOP/s")
        for name in a.configs:
            bench(name, device, a.repeats, peak)


if __name__ == "__main__":
    main()
