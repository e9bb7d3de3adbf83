"""StyleGAN-T discriminator and CLIP-guidance distance vs the official PyTorch code (issue #15).

    python benchmarks/stylegan_t_d_vs_official.py --stylegan-t-path /path/to/stylegan-t \
        [--res 64] [--batch 8]

Needs torch, torchvision and timm beside gan_zoo (never gan_zoo dependencies) and a working tree
of autonomousvision/stylegan-t fetched by the user. Both sides get the same random weights: the
official `ProjectedDiscriminator(c_dim=768, diffaug=False, p_crop=0)` is built (timm DINO
ViT-S/16 with random init instead of the download, seed 0), its DINO state dict is converted
with gan_zoo.convert.vit and its heads are copied onto ours (SN u vectors included). Prints the
max |difference| of the [N, 5 * 196] logits (train mode: one SN power iteration, BatchNormLocal)
per head, and of the official `spherical_distance` vs losses_stylegan_t.spherical_distance_sq.
"""

import argparse
import pathlib
import sys
import types

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]


def _official(path: str):
    """(ProjectedDiscriminator, ProjectedGANLoss) classes from the official tree."""
    try:
        import pkg_resources  # noqa: F401, PLC0415 (official conv2d_gradfix imports it)
    except ImportError:
        import packaging.version  # noqa: PLC0415

        sys.modules["pkg_resources"] = types.SimpleNamespace(
            parse_version=packaging.version.parse)
    sys.modules.setdefault("open_clip", types.ModuleType("open_clip"))  # loss.py imports it
    import timm  # noqa: PLC0415

    create = timm.create_model
    timm.create_model = lambda name, pretrained=False, **kw: create(name, pretrained=False, **kw)
    sys.path.insert(0, path)
    from networks.discriminator import ProjectedDiscriminator  # noqa: PLC0415
    from training.loss import ProjectedGANLoss  # noqa: PLC0415
    return ProjectedDiscriminator, ProjectedGANLoss


def _copy_conv(torch, tconv, p, s):
    w = np.asarray(p["conv"]["weight"])[0]  # [k, I, O] -> torch [O, I, k]
    tconv.weight_orig.data = torch.tensor(w.transpose(2, 1, 0).copy())
    tconv.bias.data = torch.tensor(np.asarray(p["conv"]["bias"]))
    u = np.asarray(s["conv"]["u0"])[0]
    tconv.weight_u.data = torch.tensor(u / np.linalg.norm(u))


def _copy_heads(torch, td, v):
    for i in range(5):
        th, p, s = td.heads[str(i)], v["params"][f"head{i}"], v["spectral_norm"][f"head{i}"]
        for tb, name in ((th.main[0], "block0"), (th.main[1].fn, "block1")):
            _copy_conv(torch, tb[0], p[name]["conv"], s[name]["conv"])
            tb[1].weight.data = torch.tensor(np.asarray(p[name]["bn"]["gain"]))
            tb[1].bias.data = torch.tensor(np.asarray(p[name]["bn"]["bias"]))
        _copy_conv(torch, th.cls, p["cls"], s["cls"])
        th.cmapper.weight.data = torch.tensor(np.asarray(p["cmapper"]["weight"]).T.copy())
        th.cmapper.bias.data = torch.tensor(np.asarray(p["cmapper"]["bias"]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stylegan-t-path", required=True)
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    import torch  # noqa: PLC0415

    official_d, official_loss = _official(args.stylegan_t_path)
    sys.path.insert(0, str(REPO))
    import jax  # noqa: PLC0415

    from gan_zoo import losses_stylegan_t as lt  # noqa: PLC0415
    from gan_zoo.convert import vit as cvit  # noqa: PLC0415
    from gan_zoo.models import stylegan_t_discriminator as sd  # noqa: PLC0415

    torch.manual_seed(0)
    td = official_d(c_dim=768, diffaug=False, p_crop=0.0).train()
    rng = np.random.RandomState(0)
    x = rng.uniform(-1, 1, (args.batch, 3, args.res, args.res)).astype(np.float32)
    c = rng.randn(args.batch, 768).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    d = sd.StyleGANTDiscriminator(diffaug=False, num_devices=1)
    xn = x.transpose(0, 2, 3, 1)
    v = jax.tree.map(np.asarray, jax.jit(lambda k: d.init(k, xn, c, train=False))(
        jax.random.PRNGKey(0)))
    state = {k: t.detach().numpy() for k, t in td.dino.model.model.state_dict().items()}
    v["frozen"]["dino"] = cvit.convert_state_dict(state, sd.vit.make(sd.DINO, num_classes=0))
    _copy_heads(torch, td, v)
    with torch.no_grad():
        ref = td(torch.tensor(x), torch.tensor(c)).numpy()
    ours = np.asarray(jax.jit(lambda v: d.apply(v, xn, c, train=True,
                                                mutable=["spectral_norm"])[0][0])(v))
    diff = np.abs(ours - ref)
    per_head = [float(h.max()) for h in np.split(diff, 5, axis=1)]
    print(f"D logits {ours.shape}: max|diff| {diff.max():.3g} (max|ref| {np.abs(ref).max():.3g})"
          f"; per head {', '.join(f'{h:.3g}' for h in per_head)}")
    a, b = rng.randn(2, 16, 768).astype(np.float32)
    ref_d = official_loss.spherical_distance(torch.tensor(a), torch.tensor(b)).numpy()
    ours_d = np.asarray(lt.spherical_distance_sq(a, b))
    print(f"spherical distance: max|diff| {np.abs(ours_d - ref_d).max():.3g}")


if __name__ == "__main__":
    main()
