"""PyTorch side of the WGAN-GP timing (`cargo xtask gpu-check`): one generator iteration of
`gan-cli train wgan-gp` at 28 pixels.

One iteration: `--n-critic` (5) critic updates, each on a fresh real batch and a detached fake
batch, loss mean f(fake) - mean f(real) + lambda * mean (||grad_xhat f(xhat)||_2 - 1)^2 on
per-sample interpolates xhat (create_graph=True: the penalty's gradient is second order), then
one generator update with loss -mean f(G(z)). Adam(1e-4, 0.5, 0.9) for both, lambda 10.

Networks (gan-rs crates/gan-models/src/wgan.rs, dcgan28 sizes, nz 100, ngf = ndf = --width):
  G: ConvT(nz,4w,7,1,0) BN ReLU, ConvT(4w,2w,4,2,1) BN ReLU, ConvT(2w,nc,4,2,1) tanh
  critic: Conv(nc,w,4,2,1) LReLU(0.2), Conv(w,2w,4,2,1) layer norm over (C,H,W) with a
          per-channel scale and shift LReLU(0.2), Conv(2w,1,7,1,0); no conv biases.
Real images are random tensors in [-1, 1] already on the device (no data loading is timed).

Flags: --batch N, --width W, --channels C, --n-critic K, --steps N (timed, after 3 untimed),
--device cpu|cuda, --threads N. Prints one JSON line with median_step_ms and images_per_s
(real images the critic sees per second).
"""
import argparse
import json
import statistics
import time

import torch
from torch import nn


def networks(nz, w, nc):
    g = nn.Sequential(
        nn.ConvTranspose2d(nz, 4 * w, 7, 1, 0, bias=False), nn.BatchNorm2d(4 * w), nn.ReLU(),
        nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(),
        nn.ConvTranspose2d(2 * w, nc, 4, 2, 1, bias=False), nn.Tanh())
    # GroupNorm with one group: statistics over (C, H, W) per sample, a scale and shift per
    # channel, which is what the critic's layer norm computes.
    c = nn.Sequential(
        nn.Conv2d(nc, w, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
        nn.Conv2d(w, 2 * w, 4, 2, 1, bias=False), nn.GroupNorm(1, 2 * w, eps=1e-5),
        nn.LeakyReLU(0.2),
        nn.Conv2d(2 * w, 1, 7, 1, 0, bias=False))
    return g, c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--n-critic", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    torch.manual_seed(0)
    nz, lam = 100, 10.0
    g, c = networks(nz, a.width, a.channels)
    g, c = g.to(dev), c.to(dev)
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.5, 0.9))
    opt_c = torch.optim.Adam(c.parameters(), lr=1e-4, betas=(0.5, 0.9))
    shape = (a.batch, a.channels, 28, 28)

    def iteration():
        for _ in range(a.n_critic):
            real = torch.rand(shape, device=dev) * 2 - 1
            fake = g(torch.randn(a.batch, nz, 1, 1, device=dev)).detach()
            eps = torch.rand(a.batch, 1, 1, 1, device=dev)
            xhat = (eps * real + (1 - eps) * fake).requires_grad_(True)
            grad, = torch.autograd.grad(c(xhat).sum(), xhat, create_graph=True)
            penalty = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
            loss = c(fake).mean() - c(real).mean() + lam * penalty
            opt_c.zero_grad(set_to_none=True)
            loss.backward()
            opt_c.step()
        loss_g = -c(g(torch.randn(a.batch, nz, 1, 1, device=dev))).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        return loss_g.item()  # waits for the device, as our step does

    for _ in range(3):
        iteration()
    times = []
    for _ in range(a.steps):
        t = time.perf_counter()
        iteration()
        times.append(time.perf_counter() - t)
    ms = statistics.median(times) * 1e3
    print(json.dumps({"model": "wgan-gp28", "batch": a.batch, "device": a.device,
                      "median_step_ms": ms,
                      "images_per_s": a.batch * a.n_critic / (ms / 1e3)}))


if __name__ == "__main__":
    main()
