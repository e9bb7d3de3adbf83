"""Writes tests/convert/stylegan_xl_official/: StyleGAN-XL network pickles saved by the OFFICIAL
code (autonomousvision/stylegan_xl `training/networks_stylegan3_resetting.py`) at a tiny
configuration with random weights, and the official outputs the converter test compares with.

Needs torch and a checkout of the official repo (only its Python files are used); never run by
the tests. A checkout from the bare mirror:

    mkdir /tmp/sgxl && cd /tmp/sgxl && M=<mirror dir>; for f in $(git -C $M ls-tree -r \
      --name-only HEAD | grep -E '^(training|torch_utils|dnnlib)/.*\\.py$|^legacy.py$'); do \
      mkdir -p $(dirname $f); git -C $M show HEAD:$f > $f; done
    python benchmarks/stylegan_xl_official_fixture.py --repo=/tmp/sgxl

Files (each pickle is the dict the official training loop writes, G / G_ema / D /
augment_pipe / training_set_kwargs / progress; D is None here: the Projected D needs timm and
downloaded feature networks):
- stem16.pkl: `Generator` 16^2, z 8, c 10, w 16, channel_base 256, channel_max 16, 5 layers,
  class table 10 x 12 (the official MappingNetwork reads `in_embeddings/tf_efficientnet_lite0.pkl`
  from the working directory; a tiny table is written there).
- superres32.pkl: `SuperresGenerator` 16^2 -> 32^2 (head_layers 3) on stem16.pkl, as
  `train.py --superres --path_stem=stem16.pkl --head_layers=3` builds it (reinit_stem included).
- superres64.pkl: a second stage 32^2 -> 64^2 (head_layers 4) on superres32.pkl.
- embed_10x12.pkl: that table in the official file's format ({'embed': nn.Embedding}).
- outputs.npz: embed_table (its weight); z [3, 8], c one-hot [3, 10]; per pickle and psi in
  (1, 0.7) (64^2: 0.7 only): `<name>/ws_psi<p>` and `<name>/img_psi<p>` (NCHW, G_ema,
  noise_mode='const', float32 CPU).
Weights: official init, then every parameter and buffer (w_avg, magnitude_ema) perturbed with
seeded noise so that no term is trivially zero or one; G differs from G_ema.
"""

import argparse
import copy
import os
import pathlib
import pickle
import sys
import tempfile

import numpy as np

OUT = pathlib.Path(__file__).resolve().parents[1] / "tests/convert/stylegan_xl_official"
STEM = dict(z_dim=8, c_dim=10, w_dim=16, img_resolution=16, img_channels=3,
            mapping_kwargs=dict(num_layers=2, rand_embedding=False),
            channel_base=256, channel_max=16, num_layers=5, num_fp16_res=0, conv_clamp=256,
            magnitude_ema_beta=0.5 ** (32 / 20e3), conv_kernel=3, use_radial_filters=False)
EMBED = (10, 12)  # the tiny class table (official: 1000 x 320)


def _perturb(module, seed: int):
    import torch  # noqa: PLC0415

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in list(module.named_parameters()) + list(module.named_buffers()):
            if name.endswith(("filter", "freqs", "phases", "transform")):
                continue  # design-time constants and the fixed Fourier features
            if name.endswith("magnitude_ema"):
                p.copy_(torch.rand([], generator=g) * 1.5 + 0.5)
            else:
                p.add_(torch.randn(p.shape, generator=g) * 0.2)


def _save(path, G_ema, G):
    data = dict(G=G, D=None, G_ema=G_ema, augment_pipe=None,
                training_set_kwargs=dict(resolution=G_ema.img_resolution, use_labels=True),
                progress=dict(cur_nimg=0))
    with open(path, "wb") as f:
        pickle.dump(data, f)


def _outputs(G_ema, name, z, c, out):
    import torch  # noqa: PLC0415

    psis = ((0.7, "07"),) if G_ema.img_resolution > 32 else ((1.0, "1"), (0.7, "07"))
    for psi, tag in psis:
        with torch.no_grad():
            ws = G_ema.mapping(z, c, truncation_psi=psi)
            img = G_ema.synthesis(ws, noise_mode="const")
        out[f"{name}/ws_psi{tag}"] = ws.numpy()
        out[f"{name}/img_psi{tag}"] = img.numpy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True, help="checkout of autonomousvision/stylegan_xl")
    args = ap.parse_args()
    sys.path.insert(0, os.path.abspath(args.repo))
    import torch  # noqa: PLC0415
    from training import networks_stylegan3_resetting as net  # noqa: PLC0415

    OUT.mkdir(parents=True, exist_ok=True)
    work = tempfile.mkdtemp()
    os.chdir(work)  # the official mapping reads in_embeddings/... from the working directory
    os.makedirs("in_embeddings")
    torch.manual_seed(0)
    embed = torch.nn.Embedding(*EMBED)
    for path in ("in_embeddings/tf_efficientnet_lite0.pkl", OUT / "embed_10x12.pkl"):
        with open(path, "wb") as f:
            pickle.dump({"embed": embed}, f)
    z = torch.randn([3, STEM["z_dim"]], generator=torch.Generator().manual_seed(1))
    c = torch.nn.functional.one_hot(torch.tensor([0, 7, 3]), STEM["c_dim"]).float()
    out = {"z": z.numpy(), "c": c.numpy(), "embed_table": embed.weight.detach().numpy()}
    stages = [("stem16", None, None), ("superres32", 3, "stem16"), ("superres64", 4, "superres32")]
    for i, (name, head, src) in enumerate(stages):
        if src is None:
            G = net.Generator(**STEM)
        else:
            G = net.SuperresGenerator(img_resolution=16 * 2 ** i, head_layers=head, up_factor=2,
                                      path_stem=str(OUT / f"{src}.pkl"))
            G.reinit_stem()
        G.eval().requires_grad_(False)
        G_ema = copy.deepcopy(G)
        _perturb(G, 100 + i)
        _perturb(G_ema, 200 + i)
        _save(OUT / f"{name}.pkl", G_ema, G)
        _outputs(G_ema, name, z, c, out)
    np.savez_compressed(OUT / "outputs.npz", **out)
    print({p.name: p.stat().st_size for p in OUT.iterdir()})


if __name__ == "__main__":
    main()
