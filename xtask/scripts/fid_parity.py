"""Parity fixture for gan-rs' FID Inception network against pytorch-fid.

Run by ``cargo xtask fid-parity --python PATH`` (PATH: a Python with torch, torchvision and
pytorch-fid), or directly::

    python xtask/scripts/fid_parity.py --out crates/gan-models/tests/data/inception_parity.safetensors

It needs no downloaded weights: it builds pytorch-fid's own network
(``pytorch_fid.inception.InceptionV3`` with ``use_fid_inception=True``, i.e. torchvision's
Inception-v3 with pytorch-fid's ``FIDInceptionA/C/E_1/E_2`` blocks, ``resize_input=True``,
``normalize_input=True``) and replaces only the download of its weights
(``pytorch_fid.inception.load_state_dict_from_url``) by deterministic weights from a formula that
the Rust test (``crates/gan-models/tests/inception_parity.rs``, through
``gan_models::inception::formula_weight``) reproduces bit for bit.

Weight formula (every tensor of the state dict, by its name and the index ``i`` of the element in
row-major order; ``num_batches_tracked`` and the unused ``fc.*`` are left alone)::

    h    = FNV-1a 64 of the tensor name's UTF-8 bytes
    z    = splitmix64(h + (i + 1) * 0x9E3779B97F4A7C15)      (all mod 2^64)
    u    = (z >> 11) * 2^-53 * 2 - 1                          (in [-1, 1), exact in f64)
    w    = float32(base + scale * u)                          (computed in f64, rounded once)

    *.conv.weight      base 0, scale sqrt(6 / fan_in)  (He uniform: keeps the activations' scale)
    *.bn.weight        base 1, scale 0.1
    *.bn.bias          base 0, scale 0.1
    *.bn.running_mean  base 0, scale 0.1
    *.bn.running_var   base 1, scale 0.2

Images (values in [0, 1], the input pytorch-fid's network takes; the Rust side feeds 2v - 1, the
[-1, 1] its network takes): image ``k`` with seed ``s`` has the pixel
``v(c, y, x) = ((p x² + q y + r x y + t c + s) mod 256) / 255`` with ``p, q, r, t`` the low byte
of ``splitmix64(s)``, ``splitmix64(s + 1)``, ... plus 1. Grey images are repeated on 3 channels (what
pytorch-fid's loader does with ``convert('RGB')``).

What the fixture holds (safetensors, well under 1 MB):

- ``features.NAME`` ``[1, 2048]`` f32: the pool3 features of each named image (grey 28 px, RGB
  32 px, RGB 299 px, RGB 40 x 64 and RGB 320 x 200: upsampled, not resized, non-square, and one
  side downsampled).
- ``fid.a``, ``fid.b`` ``[N, D]`` f32: the features of two sets of N images (grey 28 px and RGB
  32 px), restricted to the D feature indices ``fid.dims`` ``[D]`` i64 (the D with the largest
  variance over both sets). With N a few dozen, a 2048-wide covariance would be rank-deficient
  and the FID's matrix square root ill-posed; with N > D the covariances are full rank and the
  FID is a meaningful number to compare.
- ``fid.value`` ``[1]`` f64: ``pytorch_fid.fid_score.calculate_frechet_distance`` of the two
  sets (mean and ``np.cov`` of those D columns, as pytorch-fid computes them).

Set ``--threads`` to make torch's CPU results reproducible from run to run on one machine.
"""

import argparse
import json
import math
import struct
import sys

import numpy as np

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15

# (name, seed, channels, height, width): the named images.
NAMED = [
    ("grey28", 1, 1, 28, 28),
    ("rgb32", 2, 3, 32, 32),
    ("rgb299", 3, 3, 299, 299),
    ("rgb40x64", 4, 3, 40, 64),
    ("rgb320x200", 5, 3, 320, 200),
]
# The FID sets: set a is grey 28 px with seeds 100.., set b RGB 32 px with seeds 200...
FID_A = (100, 1, 28, 28)
FID_B = (200, 3, 32, 32)


def fnv1a64(name):
    h = 0xCBF29CE484222325
    for b in name.encode("utf-8"):
        h ^= b
        h = (h * 0x100000001B3) & MASK
    return h


def splitmix64(z):
    """Element-wise splitmix64 finaliser of a uint64 array (wrapping arithmetic)."""
    z = z.astype(np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniform(name, n):
    """The n values u in [-1, 1) of tensor `name` (f64)."""
    h = np.uint64(fnv1a64(name))
    i = np.arange(1, n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = splitmix64(h + i * np.uint64(GOLDEN))
    return (z >> np.uint64(11)).astype(np.float64) * (2.0**-53) * 2.0 - 1.0


def formula_tensor(name, shape):
    """The formula's value of tensor `name` of `shape` (float32 numpy), or None to leave it."""
    n = int(np.prod(shape))
    if name.endswith("conv.weight"):
        fan_in = n // shape[0]
        base, scale = 0.0, math.sqrt(6.0 / fan_in)
    elif name.endswith("bn.weight"):
        base, scale = 1.0, 0.1
    elif name.endswith("bn.bias") or name.endswith("bn.running_mean"):
        base, scale = 0.0, 0.1
    elif name.endswith("bn.running_var"):
        base, scale = 1.0, 0.2
    else:
        return None
    return (base + scale * uniform(name, n)).astype(np.float32).reshape(shape)


def image(seed, channels, h, w):
    """Image `seed` as float32 [channels, h, w] in [0, 1]."""
    p, q, r, t = (int(v) & 0xFF for v in splitmix64(np.arange(seed, seed + 4, dtype=np.uint64)))
    p, q, r, t = p + 1, q + 1, r + 1, t + 1
    c = np.arange(channels, dtype=np.int64)[:, None, None]
    y = np.arange(h, dtype=np.int64)[None, :, None]
    x = np.arange(w, dtype=np.int64)[None, None, :]
    v = (p * x * x + q * y + r * x * y + t * c + seed) % 256
    return (v.astype(np.float64) / 255.0).astype(np.float32)


def build_network(torch):
    """pytorch-fid's InceptionV3 (pool3 output) with the formula's weights instead of the download."""
    import pytorch_fid.inception as pfi

    built = {}
    original = pfi._inception_v3

    def capture(*args, **kwargs):
        net = original(*args, **kwargs)
        built["net"] = net
        return net

    def formula_state_dict(url, progress=True, **_):
        # fid_inception_v3 has swapped its FID blocks in by now: the names and shapes are those of
        # the network that will load this.
        out = {}
        for name, t in built["net"].state_dict().items():
            v = formula_tensor(name, tuple(t.shape))
            out[name] = t.clone() if v is None else torch.from_numpy(v)
        return out

    pfi._inception_v3 = capture
    pfi.load_state_dict_from_url = formula_state_dict
    try:
        net = pfi.InceptionV3([3], resize_input=True, normalize_input=True, use_fid_inception=True)
    finally:
        pfi._inception_v3 = original
    return net.eval()


def features(torch, net, seed, channels, h, w):
    img = torch.from_numpy(image(seed, channels, h, w))[None]
    if channels == 1:
        img = img.repeat(1, 3, 1, 1)
    with torch.no_grad():
        return net(img)[0].reshape(1, -1).numpy()


def write_safetensors(path, tensors, metadata):
    """A safetensors file by hand (no extra dependency): header length, JSON header, data."""
    header = {"__metadata__": metadata}
    blobs = []
    offset = 0
    dtypes = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64", np.dtype(np.int64): "I64"}
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        raw = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {
            "dtype": dtypes[a.dtype],
            "shape": list(a.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="the .safetensors fixture to write")
    ap.add_argument("--fid-count", type=int, default=16, help="images in each FID set (N)")
    ap.add_argument("--fid-dims", type=int, default=8, help="feature indices kept for the FID (D)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.fid_dims >= args.fid_count:
        sys.exit("--fid-dims must be below --fid-count (full-rank covariances)")

    import torch
    import torchvision
    import pytorch_fid
    from pytorch_fid.fid_score import calculate_frechet_distance

    torch.set_num_threads(args.threads)
    net = build_network(torch)
    tensors = {}
    for name, seed, c, h, w in NAMED:
        f = features(torch, net, seed, c, h, w)
        tensors["features." + name] = f
        print(f"{name}: {c}x{h}x{w}, features mean {f.mean():.4f}, max {f.max():.4f}, "
              f"zeros {(f == 0).sum()}", file=sys.stderr)

    def fid_set(spec):
        s0, c, h, w = spec
        return np.concatenate([features(torch, net, s0 + k, c, h, w) for k in range(args.fid_count)])

    a, b = fid_set(FID_A), fid_set(FID_B)
    var = np.concatenate([a, b]).astype(np.float64).var(axis=0)
    dims = np.sort(np.argsort(-var, kind="stable")[: args.fid_dims]).astype(np.int64)
    a, b = a[:, dims], b[:, dims]
    mu1, s1 = np.mean(a, axis=0), np.cov(a, rowvar=False)
    mu2, s2 = np.mean(b, axis=0), np.cov(b, rowvar=False)
    fid = float(calculate_frechet_distance(mu1, s1, mu2, s2))
    print(f"FID over dims {dims.tolist()}: {fid}", file=sys.stderr)
    tensors["fid.a"] = a
    tensors["fid.b"] = b
    tensors["fid.dims"] = dims
    tensors["fid.value"] = np.array([fid], dtype=np.float64)
    meta = {
        "made_by": "xtask/scripts/fid_parity.py",
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "pytorch_fid": getattr(pytorch_fid, "__version__", "unknown"),
        "numpy": np.__version__,
        "fid_count": str(args.fid_count),
        "fid_dims": str(args.fid_dims),
    }
    write_safetensors(args.out, tensors, meta)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
