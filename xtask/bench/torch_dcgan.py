"""The PyTorch side of `cargo xtask bench --torch PYTHON`: times one DCGAN training step.

A step: the discriminator's Adam update on a batch of real and a batch of generated images,
then the generator's (non-saturating loss), both with BCE on logits, Adam(2e-4, 0.5, 0.999).
The networks are gan-rs's `dcgan28` and `dcgan64` (crates/gan-models/src/dcgan.rs), the same
as PyTorch's DCGAN example for 64 pixels: bias-free convolutions, BatchNorm after every hidden
layer but the discriminator's first, ReLU in the generator, LeakyReLU(0.2) in the discriminator.

Flags: --model dcgan28|dcgan64, --batch N, --steps N (timed, after 3 untimed), --channels C,
--device cpu|cuda, --threads N. Prints one JSON line with median_step_ms and images_per_s.
"""
import argparse
import json
import statistics
import time

import torch
from torch import nn


def block_up(cin, cout, k, s, p, last=False):
    layers = [nn.ConvTranspose2d(cin, cout, k, s, p, bias=False)]
    layers += [nn.Tanh()] if last else [nn.BatchNorm2d(cout), nn.ReLU(True)]
    return layers


def block_down(cin, cout, k, s, p, norm=True):
    layers = [nn.Conv2d(cin, cout, k, s, p, bias=False)]
    if norm:
        layers.append(nn.BatchNorm2d(cout))
    return layers + [nn.LeakyReLU(0.2, True)]


def networks(model, nc, nz=100, width=64):
    """Generator, discriminator and image shape of `model`."""
    if model == "dcgan28":
        widths = [width * 4, width * 2]
        g = block_up(nz, widths[0], 7, 1, 0) + block_up(widths[0], widths[1], 4, 2, 1)
        g += block_up(widths[1], nc, 4, 2, 1, last=True)
        d = block_down(nc, width, 4, 2, 1, norm=False) + block_down(width, width * 2, 4, 2, 1)
        d += [nn.Conv2d(width * 2, 1, 7, 1, 0, bias=False)]
        side = 28
    else:
        widths = [width * 8, width * 4, width * 2, width]
        g = block_up(nz, widths[0], 4, 1, 0)
        for a, b in zip(widths, widths[1:]):
            g += block_up(a, b, 4, 2, 1)
        g += block_up(widths[-1], nc, 4, 2, 1, last=True)
        d = block_down(nc, width, 4, 2, 1, norm=False)
        for a, b in zip(widths[::-1], widths[::-1][1:]):
            d += block_down(a, b, 4, 2, 1)
        d += [nn.Conv2d(widths[0], 1, 4, 1, 0, bias=False)]
        side = 64
    return nn.Sequential(*g), nn.Sequential(*d, nn.Flatten()), (nc, side, side)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["dcgan28", "dcgan64"], default="dcgan28")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--channels", type=int)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    nc = args.channels or (1 if args.model == "dcgan28" else 3)
    dev = torch.device(args.device)
    g, d, shape = networks(args.model, nc)
    g, d = g.to(dev), d.to(dev)
    bce = nn.BCEWithLogitsLoss()
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = torch.rand(args.batch, *shape, device=dev) * 2 - 1
    target_real = torch.ones(args.batch, 1, device=dev)
    target_fake = torch.zeros(args.batch, 1, device=dev)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    times = []
    for step in range(3 + args.steps):
        sync()
        start = time.perf_counter()
        fake = g(torch.randn(args.batch, 100, 1, 1, device=dev))
        opt_d.zero_grad()
        loss_d = bce(d(real), target_real) + bce(d(fake.detach()), target_fake)
        loss_d.backward()
        opt_d.step()
        opt_g.zero_grad()
        bce(d(fake), target_real).backward()
        opt_g.step()
        loss_d.item()
        sync()
        if step >= 3:
            times.append(time.perf_counter() - start)
    median = statistics.median_low(times)
    print(json.dumps({
        "framework": "torch", "version": torch.__version__, "model": args.model,
        "batch": args.batch, "device": args.device, "threads": torch.get_num_threads(),
        "median_step_ms": round(median * 1e3, 2), "images_per_s": round(args.batch / median, 1),
    }))


if __name__ == "__main__":
    main()
