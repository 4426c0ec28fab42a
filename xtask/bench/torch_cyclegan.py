"""PyTorch side of the CycleGAN timing (`cargo xtask gpu-check`): one step of
`gan-cli train cyclegan`.

One step, batch 1: G (A->B) and F (B->A) forward; generator loss LSGAN(D_B(G(a)), 1) +
LSGAN(D_A(F(b)), 1) + 10 (|F(G(a)) - a|_1 + |G(F(b)) - b|_1) + 0.5 * 10 (|G(b) - b|_1 +
|F(a) - a|_1), one Adam step of both generators; then each discriminator's
0.5 (LSGAN(D(real), 1) + LSGAN(D(fake.detach()), 0)) and one Adam step of both.
Adam(2e-4, 0.5, 0.999). The 50-image pool is left out: it does no arithmetic.

Networks (gan-rs crates/gan-models/src/cyclegan.rs, Zhu et al.'s ResNet generator and 70x70
PatchGAN): G = reflection pad 3, conv 7x7 ngf, two stride-2 3x3 convs (2ngf, 4ngf),
--n-blocks residual blocks (reflection pad 1, conv 3x3, norm, ReLU, reflection pad 1, conv 3x3,
norm), two stride-2 3x3 transposed convs (output padding 1), reflection pad 3, conv 7x7 to C,
tanh; instance norm without affine parameters and ReLU after every conv but the last; conv
biases on. D = conv 4x4 s2 ndf LReLU(0.2), then --n-layers - 1 more stride-2 convs and one
stride-1 conv doubling the width up to 8 ndf, each with instance norm and LReLU, then a 4x4
conv to one channel.

Flags: --size S, --channels C, --ngf, --ndf, --n-blocks, --n-layers, --steps N (timed, after 3
untimed), --device cpu|cuda, --threads N. Prints one JSON line with median_step_ms and
images_per_s (image pairs per second).
"""
import argparse
import json
import statistics
import time

import torch
from torch import nn


def norm(c):
    return nn.InstanceNorm2d(c, affine=False)


class Residual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), norm(c), nn.ReLU(),
            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), norm(c))

    def forward(self, x):
        return x + self.body(x)


def generator(c, f, blocks):
    layers = [nn.ReflectionPad2d(3), nn.Conv2d(c, f, 7), norm(f), nn.ReLU()]
    for m in (1, 2):
        layers += [nn.Conv2d(f * m, f * m * 2, 3, 2, 1), norm(f * m * 2), nn.ReLU()]
    layers += [Residual(4 * f) for _ in range(blocks)]
    for m in (4, 2):
        layers += [nn.ConvTranspose2d(f * m, f * m // 2, 3, 2, 1, output_padding=1),
                   norm(f * m // 2), nn.ReLU()]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(f, c, 7), nn.Tanh()]
    return nn.Sequential(*layers)


def discriminator(c, f, n_layers):
    layers = [nn.Conv2d(c, f, 4, 2, 1), nn.LeakyReLU(0.2)]
    width = f
    for i in range(1, n_layers + 1):
        out = f * min(2 ** i, 8)
        stride = 2 if i < n_layers else 1
        layers += [nn.Conv2d(width, out, 4, stride, 1), norm(out), nn.LeakyReLU(0.2)]
        width = out
    layers.append(nn.Conv2d(width, 1, 4, 1, 1))
    return nn.Sequential(*layers)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--ngf", type=int, default=64)
    ap.add_argument("--ndf", type=int, default=64)
    ap.add_argument("--n-blocks", type=int, default=9)
    ap.add_argument("--n-layers", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    torch.manual_seed(0)
    g = generator(a.channels, a.ngf, a.n_blocks).to(dev)
    f = generator(a.channels, a.ngf, a.n_blocks).to(dev)
    d_a = discriminator(a.channels, a.ndf, a.n_layers).to(dev)
    d_b = discriminator(a.channels, a.ndf, a.n_layers).to(dev)
    adam = dict(lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(list(g.parameters()) + list(f.parameters()), **adam)
    opt_d = torch.optim.Adam(list(d_a.parameters()) + list(d_b.parameters()), **adam)
    mse, l1 = nn.MSELoss(), nn.L1Loss()
    shape = (1, a.channels, a.size, a.size)

    def gan(out, target):
        return mse(out, torch.full_like(out, target))

    def step():
        real_a = torch.rand(shape, device=dev) * 2 - 1
        real_b = torch.rand(shape, device=dev) * 2 - 1
        for p in list(d_a.parameters()) + list(d_b.parameters()):
            p.requires_grad_(False)
        fake_b, fake_a = g(real_a), f(real_b)
        loss_g = (gan(d_b(fake_b), 1.0) + gan(d_a(fake_a), 1.0)
                  + 10 * (l1(f(fake_b), real_a) + l1(g(fake_a), real_b))
                  + 5 * (l1(g(real_b), real_b) + l1(f(real_a), real_a)))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        for p in list(d_a.parameters()) + list(d_b.parameters()):
            p.requires_grad_(True)
        loss_d = 0.5 * (gan(d_b(real_b), 1.0) + gan(d_b(fake_b.detach()), 0.0)) \
            + 0.5 * (gan(d_a(real_a), 1.0) + gan(d_a(fake_a.detach()), 0.0))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        return loss_g.item() + loss_d.item()  # waits for the device

    for _ in range(3):
        step()
    times = []
    for _ in range(a.steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    ms = statistics.median(times) * 1e3
    print(json.dumps({"model": f"cyclegan{a.size}", "device": a.device, "median_step_ms": ms,
                      "images_per_s": 1.0 / (ms / 1e3)}))


if __name__ == "__main__":
    main()
