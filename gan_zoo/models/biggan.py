"""BigGAN generator and discriminator (Brock, Donahue, Simonyan, ICLR 2019; spec biggan.md §1),
the `VARIANTS` table of both families and the `make_generator` / `make_discriminator` factories.

BigGAN-deep lives in `gan_zoo.models.biggan_deep` with the same class names. Layout NHWC; the
architecture tables are BigGAN-PyTorch's (`BigGAN.py` G_arch / D_arch), which reproduce the paper's
parameter counts (spec §1.8.2, §1.9). Example:

    G = biggan.make_generator(biggan.VARIANTS["biggan-128"])
    variables = G.init(rng, z, labels, train=False)
    (images, aux), state = G.apply(variables, z, labels, train=True,
                                   mutable=["batch_stats", "spectral_norm"])

Collections: `params`; `batch_stats` (`stored_mean`, `stored_var`); `spectral_norm` (`u0`,
`sv0`). Every forward runs one power iteration per SN layer; only train=True writes u0/sv0 and
the BN running statistics back (BigGAN-PyTorch semantics).
"""

from typing import Any, Mapping, Optional, Union

import flax.linen as nn
import jax.numpy as jnp

from gan_zoo import checks
from gan_zoo.models import biggan_deep
from gan_zoo.models.biggan_common import (
    G_ARCH,
    BNSettings,
    SNSettings,
    arch_row,
    avg_pool2x,
    check_labels,
    class_embedding,
    minibatch_std_input,
    output_layer,
    parse_attn,
    projection_head,
    resolve_dtype,
    sigmas,
    upsample2x,
)

# D (reference layout, spec §1.8.2: the first block takes the RGB image; flags = downsample;
# labels as in BigGAN-PyTorch, incl. its res-32 quirk of labelling every block 16).
D_ARCH = {
    32: (["rgb", 4, 4, 4], [4, 4, 4, 4], [True, True, False, False], [16, 16, 16, 16]),
    64: (["rgb", 1, 2, 4, 8], [1, 2, 4, 8, 16], [True] * 4 + [False], [32, 16, 8, 4, 4]),
    128: (["rgb", 1, 2, 4, 8, 16], [1, 2, 4, 8, 16, 16], [True] * 5 + [False],
          [64, 32, 16, 8, 4, 4]),
    256: (["rgb", 1, 2, 4, 8, 8, 16], [1, 2, 4, 8, 8, 16, 16], [True] * 6 + [False],
          [128, 64, 32, 16, 8, 4, 4]),
    512: (["rgb", 1, 1, 2, 4, 8, 8, 16], [1, 1, 2, 4, 8, 8, 16, 16], [True] * 7 + [False],
          [256, 128, 64, 32, 16, 8, 4, 4]),
}


class GBlock(nn.Module):
    """BigGAN G residual block. BigGAN App. B, Fig. 15b (spec §1.4); BigGAN-PyTorch GBlock.

    h = conv3(relu(ccbn2(conv3(up(relu(ccbn1(x, c)))), c))); skip = conv1x1(up(x)).
    x: [N, H, W, I], c: [N, D] (or int [N] for per-layer tables) -> [N, 2H, 2W, out_ch].
    """

    out_ch: int  # O, output channels
    upsample: bool  # nearest x2 on both paths
    sn: SNSettings  # spectral norm of the convs and BN projections
    bn: BNSettings  # conditional BN settings
    shared: bool = True  # c is the shared embedding (+ z chunk); False: class ids
    n_classes: int = 0  # per-layer table size when shared=False
    dtype: Optional[Any] = None  # compute dtype

    @nn.compact
    def __call__(self, x, c, *, train: bool):
        ccbn = lambda name: self.bn.ccbn(name, self.sn, self.shared, self.n_classes, self.dtype)
        conv = lambda o, k, name: self.sn.conv(o, k, name, self.dtype)
        h = nn.relu(ccbn("bn1")(x, c, train=train))
        if self.upsample:  # Upsample both paths.
            h, x = upsample2x(h), upsample2x(x)
        h = conv(self.out_ch, 3, "conv1")(h, train=train)
        h = nn.relu(ccbn("bn2")(h, c, train=train))
        h = conv(self.out_ch, 3, "conv2")(h, train=train)
        if x.shape[-1] != self.out_ch or self.upsample:  # Learnable 1x1 shortcut.
            x = conv(self.out_ch, 1, "conv_sc")(x, train=train)
        return h + x


class DBlock(nn.Module):
    """BigGAN D residual block. BigGAN App. B, Fig. 15c (spec §1.4); BigGAN-PyTorch DBlock.

    h = pool(conv3(relu(conv3(relu?(x))))); skip = pool(conv1x1(x)) (pre-activated blocks) or
    conv1x1(pool(x)) (first block, no pre-activation); identity when in == out and no pooling.
    x: [N, H, W, I] -> [N, H/2, W/2, out_ch] (or same size when downsample=False).
    """

    out_ch: int  # O, output channels
    downsample: bool  # 2x2 average pool
    preactivation: bool  # relu on the input (False for the first block, whose input is RGB)
    sn: SNSettings  # spectral norm of the convs
    wide: bool = True  # hidden width = out_ch (BigGAN D); False: in channels (SN-GAN)
    dtype: Optional[Any] = None  # compute dtype

    @nn.compact
    def __call__(self, x, *, train: bool):
        conv = lambda o, k, name: self.sn.conv(o, k, name, self.dtype)
        in_ch = x.shape[-1]
        hidden = self.out_ch if self.wide else in_ch
        h = nn.relu(x) if self.preactivation else x
        h = conv(hidden, 3, "conv1")(h, train=train)
        h = conv(self.out_ch, 3, "conv2")(nn.relu(h), train=train)
        if self.downsample:
            h = avg_pool2x(h)
        # Shortcut: pre-activated blocks convolve then pool; the first block pools then convolves.
        learnable = in_ch != self.out_ch or self.downsample
        sc = conv(self.out_ch, 1, "conv_sc") if learnable else (lambda v, train: v)
        if self.preactivation:
            s = sc(x, train=train)
            s = avg_pool2x(s) if self.downsample else s
        else:
            s = avg_pool2x(x) if self.downsample else x
            s = sc(s, train=train)
        return h + s


class Generator(nn.Module):
    """BigGAN generator. BigGAN §3, App. B, Tab. 4-6 (spec §1.2, §1.4, §1.8.1).

    z: [N, dim_z], labels: int [N] (or y: [N, shared_dim], the shared embedding, for
    interpolation in embedding space) -> (images [N, R, R, 3] in [-1, 1], aux) with
    aux = {"y": [N, shared_dim] shared embedding, "sv": {layer: sigma}}.
    Hierarchical z (skip-z): z splits into len(blocks) + 1 chunks; chunk 0 feeds `linear`, chunk
    i >= 1 is concatenated AFTER y ([y, z_i], BigGAN-PyTorch order) to condition block i - 1.
    """

    resolution: int = 128  # R, output size (32, 64, 128, 256, 512)
    n_classes: int = 1000  # number of classes
    dim_z: int = 120  # latent size (hier: a multiple of the number of blocks + 1)
    shared_dim: int = 128  # size of the shared class embedding
    hier: bool = True  # hierarchical z / skip-z (BigGAN §3)
    G_shared: bool = True  # shared embedding + linear CBN projections; False: per-layer tables
    G_ch: int = 96  # ch, channel multiplier
    G_attn: str = "64"  # resolutions with a non-local block, '_'-joined; '0' = none
    bottom_width: int = 4  # spatial size of the first feature map
    BN_eps: float = 1e-4  # conditional-BN epsilon (App. C)
    out_bn_eps: Optional[float] = None  # final-BN epsilon; None: BN_eps (BigGAN-PyTorch: 1e-5)
    SN_eps: float = 1e-4  # spectral-norm epsilon (App. C)
    num_G_SVs: int = 1  # singular values tracked per SN layer
    num_G_SV_itrs: int = 1  # power iterations per forward
    bn_reduction_group: Union[str, int] = "global"  # BN statistics group (spec §4)
    bn_num_devices: Optional[int] = None  # devices for reduction_group="device"
    rgb_conv_channels: int = 3  # output-conv width; the first 3 channels are kept
    dtype: Optional[Any] = None  # compute dtype (params, BN statistics and SN stay float32)

    def arch(self) -> dict:
        return arch_row(G_ARCH, self.resolution, self.G_ch, "Generator.resolution")

    def z_chunks(self) -> tuple[int, int]:
        """(number of z chunks, chunk size); (1, dim_z) without hier."""
        if not self.hier:
            return 1, self.dim_z
        slots = len(self.arch()["out"]) + 1
        if self.dim_z % slots:
            raise ValueError(f"Generator: with hier=True dim_z must be a multiple of {slots} "
                             f"(blocks + 1) at resolution {self.resolution}, got {self.dim_z}")
        return slots, self.dim_z // slots

    @nn.compact
    def __call__(self, z, labels=None, *, y=None, train: bool):
        dtype = resolve_dtype(self.dtype)
        sn = SNSettings(self.num_G_SVs, self.num_G_SV_itrs, self.SN_eps)
        bn = BNSettings(self.BN_eps, self.BN_eps if self.out_bn_eps is None else self.out_bn_eps,
                        self.bn_reduction_group, self.bn_num_devices)
        arch, attn = self.arch(), parse_attn(self.G_attn, "G_attn")
        slots, chunk = self.z_chunks()
        checks.check_shape("Generator: z", z, (None, slots * chunk))
        n = z.shape[0]
        # Class conditioning: the shared embedding (BigGAN §3), or class ids for per-layer tables.
        y = class_embedding(self, labels, y, n)
        # Skip-z: chunk 0 -> linear, chunk i -> [y, z_i] for block i - 1.
        zs = jnp.split(z, slots, axis=-1) if slots > 1 else [z]
        if self.hier:
            conds = [jnp.concatenate([y, zi.astype(y.dtype)], axis=-1) for zi in zs[1:]]
        else:
            conds = [y] * len(arch["out"])
        # Linear to [N, C, bw, bw] (torch C-major view), then NHWC.
        bw, c0 = self.bottom_width, arch["in"][0]
        h = sn.dense(c0 * bw * bw, "linear", dtype)(zs[0], train=train)
        h = h.reshape(n, c0, bw, bw).transpose(0, 2, 3, 1)  # [N, bw, bw, C]
        for i, (o, up, r) in enumerate(zip(arch["out"], arch["flags"], arch["res"])):
            h = GBlock(o, up, sn, bn, self.G_shared, self.n_classes, dtype,
                       name=f"blocks_{i}_0")(h, conds[i], train=train)
            if r in attn:
                h = sn.attention(f"blocks_{i}_1", dtype)(h, train=train)
        img = output_layer(h, sn, bn, self.rgb_conv_channels, train, dtype)
        names = ["linear"] + [f"blocks_{i}_0/conv1" for i in range(len(arch["out"]))]
        return img, {"y": y, "sv": sigmas(self, names + ["output_layer_2"])}


class Discriminator(nn.Module):
    """BigGAN projection discriminator. BigGAN §3, App. B, Tab. 4-6 (spec §1.4, §1.7, §1.8.2).

    x: [N, R, R, 3] in [-1, 1], labels: int [N] -> (logits [N] float32, aux) with
    aux = {"features": [N, 16ch] sum-pooled relu features, "sv": {layer: sigma}}.
    """

    resolution: int = 128  # R, input size (32, 64, 128, 256, 512)
    n_classes: int = 1000  # number of classes
    D_ch: int = 96  # ch, channel multiplier
    D_attn: str = "64"  # resolutions with a non-local block, '_'-joined; '0' = none
    D_wide: bool = True  # first conv of each block outputs out_ch channels (BigGAN App. B)
    SN_eps: float = 1e-4  # spectral-norm epsilon (App. C)
    num_D_SVs: int = 1  # singular values tracked per SN layer
    num_D_SV_itrs: int = 1  # power iterations per forward
    # Minibatch stddev before the last block (StyleGAN's epilogue, ProGAN §3): group size of
    # consecutive samples; 0 = off = the paper's BigGAN (not in BigGAN; CPU presets only)
    mbstd_group: int = 0
    mbstd_channels: int = 1  # std maps appended when mbstd_group > 0 (StyleGAN2: num_channels)
    dtype: Optional[Any] = None  # compute dtype of the blocks; the head runs in float32

    def arch(self) -> dict:
        return arch_row(D_ARCH, self.resolution, self.D_ch, "Discriminator.resolution")

    @nn.compact
    def __call__(self, x, labels, *, train: bool):
        dtype = resolve_dtype(self.dtype)
        sn = SNSettings(self.num_D_SVs, self.num_D_SV_itrs, self.SN_eps)
        arch, attn = self.arch(), parse_attn(self.D_attn, "D_attn")
        checks.check_shape("Discriminator: x", x, (None, self.resolution, self.resolution, 3))
        check_labels("Discriminator", labels, x.shape[0])
        h = x if dtype is None else x.astype(dtype)
        last = len(arch["out"]) - 1
        for i, (o, down, r) in enumerate(zip(arch["out"], arch["flags"], arch["res"])):
            if i == last:  # D sees the group's spread (+mbstd_channels if mbstd_group).
                h = minibatch_std_input(h, self.mbstd_group, self.mbstd_channels)
            h = DBlock(o, down, i > 0, sn, self.D_wide, dtype, name=f"blocks_{i}_0")(
                h, train=train)
            if r in attn:
                h = sn.attention(f"blocks_{i}_1", dtype)(h, train=train)
        logits, feats = projection_head(h, labels, sn, self.n_classes, train)
        names = [f"blocks_{i}_0/conv1" for i in range(len(arch["out"]))] + ["linear", "embed"]
        return logits, {"features": feats, "sv": sigmas(self, names)}


# Paper configurations (model-config rows for make_generator / make_discriminator).
# BigGAN: Tab. 4-6 + App. B/C (ch=96, hierarchical z of 20-D chunks, shared 128-D embedding,
# attention per spec §1.6). BigGAN-deep: Tab. 7-9 + App. B (ch=128, G/D depth 2, z=128).
# Param counts (spec §1.9) are pinned in tests/models/biggan_test.py.
_PAPER = dict(n_classes=1000, shared_dim=128, hier=True, G_shared=True, BN_eps=1e-4,
              SN_eps=1e-4, num_G_SVs=1, num_D_SVs=1, bn_reduction_group="global")
VARIANTS = {
    "biggan-128": dict(_PAPER, name="biggan", resolution=128, dim_z=120, G_ch=96, D_ch=96,
                       G_attn="64", D_attn="64"),
    "biggan-256": dict(_PAPER, name="biggan", resolution=256, dim_z=140, G_ch=96, D_ch=96,
                       G_attn="128", D_attn="64"),
    "biggan-512": dict(_PAPER, name="biggan", resolution=512, dim_z=160, G_ch=96, D_ch=96,
                       G_attn="64", D_attn="64"),
    "biggan-deep-128": dict(_PAPER, name="biggan_deep", resolution=128, dim_z=128, G_ch=128,
                            D_ch=128, G_depth=2, D_depth=2, G_attn="64", D_attn="64"),
    "biggan-deep-256": dict(_PAPER, name="biggan_deep", resolution=256, dim_z=128, G_ch=128,
                            D_ch=128, G_depth=2, D_depth=2, G_attn="64", D_attn="64"),
    "biggan-deep-512": dict(_PAPER, name="biggan_deep", resolution=512, dim_z=128, G_ch=128,
                            D_ch=128, G_depth=2, D_depth=2, G_attn="64", D_attn="64"),
    # Tiny CPU-sized variants for tests and smoke runs.
    "biggan_test": dict(_PAPER, name="biggan", resolution=32, n_classes=10, dim_z=32,
                        shared_dim=16, G_ch=4, D_ch=4, G_attn="16", D_attn="16"),
    "biggan-deep_test": dict(_PAPER, name="biggan_deep", resolution=32, n_classes=10, dim_z=16,
                             shared_dim=16, G_ch=8, D_ch=8, G_depth=2, D_depth=2, G_attn="16",
                             D_attn="16"),
}
FAMILIES = ("biggan", "biggan_deep")


def _get(cfg: Mapping, key: str, default):
    return cfg[key] if key in cfg and cfg[key] is not None else default


def _bn_group(cfg: Mapping):
    """bn_reduction_group, or the legacy cross_replica flag (True: global, False: per device)."""
    if "bn_reduction_group" in cfg and cfg["bn_reduction_group"] is not None:
        return cfg["bn_reduction_group"]
    return "global" if _get(cfg, "cross_replica", True) else "device"


def _family(cfg: Mapping) -> str:
    name = _get(cfg, "name", "biggan")
    if name not in FAMILIES:
        raise ValueError(f"model.name must be one of {FAMILIES}, got {name!r}")
    return name


def make_generator(model_cfg: Mapping, data_devices: Optional[int] = None) -> nn.Module:
    """`Generator` of model_cfg.name ('biggan' | 'biggan_deep') from a ConfigDict / dict / VARIANTS
    row. Required: resolution, n_classes, dim_z; the rest default to the paper values.
    data_devices: the mesh's 'data' size, the "device" BN group's denominator unless
    model_cfg.bn_num_devices is set (None: jax.device_count()).

    `hier` (hierarchical z chunks) and `G_shared` apply to BigGAN only; BigGAN-deep has one
    conditioning mode, the shared embedding concatenated with the whole z for every layer."""
    cfg, deep = model_cfg, _family(model_cfg) == "biggan_deep"
    kw = dict(resolution=cfg["resolution"], n_classes=cfg["n_classes"], dim_z=cfg["dim_z"],
              shared_dim=_get(cfg, "shared_dim", 128), hier=_get(cfg, "hier", True),
              G_shared=_get(cfg, "G_shared", True), G_ch=_get(cfg, "G_ch", 128 if deep else 96),
              G_attn=str(_get(cfg, "G_attn", "64")), bottom_width=_get(cfg, "bottom_width", 4),
              BN_eps=_get(cfg, "BN_eps", 1e-4), out_bn_eps=_get(cfg, "out_bn_eps", None),
              SN_eps=_get(cfg, "SN_eps", 1e-4), num_G_SVs=_get(cfg, "num_G_SVs", 1),
              num_G_SV_itrs=_get(cfg, "num_G_SV_itrs", 1), bn_reduction_group=_bn_group(cfg),
              bn_num_devices=_get(cfg, "bn_num_devices", data_devices),
              rgb_conv_channels=_get(cfg, "rgb_conv_channels", 3),
              dtype=resolve_dtype(_get(cfg, "dtype", None)))
    if deep:  # BigGAN-deep always conditions on [y, z] (skip-z, no chunks): hier, G_shared unread.
        kw.pop("G_shared"), kw.pop("hier")
        G = biggan_deep.Generator(G_depth=_get(cfg, "G_depth", 2), **kw)
    else:
        G = Generator(**kw)
    G.z_chunks()  # Validates resolution and dim_z now rather than at the first trace.
    return G


def make_discriminator(model_cfg: Mapping) -> nn.Module:
    """`Discriminator` of model_cfg.name from a ConfigDict / dict / VARIANTS row."""
    cfg, deep = model_cfg, _family(model_cfg) == "biggan_deep"
    kw = dict(resolution=cfg["resolution"], n_classes=cfg["n_classes"],
              D_ch=_get(cfg, "D_ch", 128 if deep else 96), D_attn=str(_get(cfg, "D_attn", "64")),
              SN_eps=_get(cfg, "SN_eps", 1e-4), num_D_SVs=_get(cfg, "num_D_SVs", 1),
              num_D_SV_itrs=_get(cfg, "num_D_SV_itrs", 1),
              dtype=resolve_dtype(_get(cfg, "dtype", None)))
    kw["mbstd_group"] = _get(cfg, "d_mbstd_group", 0)
    kw["mbstd_channels"] = _get(cfg, "d_mbstd_channels", 1)
    if deep:
        D = biggan_deep.Discriminator(D_depth=_get(cfg, "D_depth", 2), **kw)
    else:
        D = Discriminator(D_wide=_get(cfg, "D_wide", True), **kw)
    D.arch()  # Validates the resolution now.
    return D
