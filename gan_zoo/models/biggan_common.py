"""Pieces shared by BigGAN and BigGAN-deep (Brock et al. 2019; spec biggan.md §1): SN and BN
settings, resampling, the architecture-table helpers, G's output layer and D's projection head.

Submodule names follow BigGAN-PyTorch with the dots of list indices turned into underscores
(`blocks.1.0.bn1` -> `blocks_1_0/bn1`, `output_layer.2` -> `output_layer_2`), so that
`gan_zoo.convert.biggan` maps names one-to-one.
"""

import dataclasses
from typing import Optional, Union

import flax.linen as nn
import jax.numpy as jnp

from gan_zoo import checks, ops
from gan_zoo import nn as gnn

Dtype = jnp.dtype


@dataclasses.dataclass(frozen=True)
class SNSettings:
    """Spectral-norm settings of every SN layer of one network (BigGAN §3, App. C; spec §1.3)."""

    num_svs: int = 1  # singular values tracked per layer (num_G_SVs / num_D_SVs; only 1)
    num_itrs: int = 1  # power iterations per forward (num_G_SV_itrs / num_D_SV_itrs)
    eps: float = 1e-4  # F.normalize epsilon (paper App. C: 1e-4; BigGAN-PyTorch default 1e-12)

    def _kw(self, dtype):
        return dict(num_svs=self.num_svs, num_itrs=self.num_itrs, eps=self.eps, dtype=dtype)

    def conv(self, features: int, kernel: int, name: str, dtype=None) -> gnn.SNConv:
        """k x k SN conv with torch padding k // 2 and a bias."""
        return gnn.SNConv(features, kernel_size=kernel, padding=kernel // 2, name=name,
                          **self._kw(dtype))

    def dense(self, features: int, name: str, dtype=None) -> gnn.SNDense:
        return gnn.SNDense(features, name=name, **self._kw(dtype))

    def embedding(self, num: int, features: int, name: str) -> gnn.SNEmbedding:
        return gnn.SNEmbedding(num, features, name=name, num_svs=self.num_svs,
                               num_itrs=self.num_itrs, eps=self.eps)

    def attention(self, name: str, dtype=None) -> gnn.Attention:
        return gnn.Attention(name=name, **self._kw(dtype))


@dataclasses.dataclass(frozen=True)
class BNSettings:
    """G's batch-norm settings (BigGAN §2.5 cross-replica BN; spec §1.2, §4)."""

    eps: float = 1e-4  # BN_eps of the conditional BNs (paper 1e-4; BigGAN-PyTorch 1e-5)
    out_eps: float = 1e-4  # eps of the final unconditional BN (BigGAN-PyTorch: always 1e-5)
    reduction_group: Union[str, int] = "global"  # "global" (cross-replica), "device" or k
    num_devices: Optional[int] = None  # devices for "device"; None: jax.device_count()

    def ccbn(self, name: str, sn: SNSettings, shared: bool, n_classes: int, dtype=None):
        """Class-conditional BN: SN projections of the shared conditioning vector (shared=True)
        or per-layer class tables (shared=False, BigGAN Tab. 1 ablation)."""
        return gnn.ConditionalBatchNorm(
            name=name, eps=self.eps, reduction_group=self.reduction_group,
            num_devices=self.num_devices, projection="sn_dense" if shared else "embedding",
            num_classes=None if shared else n_classes, num_svs=sn.num_svs,
            num_itrs=sn.num_itrs, sn_eps=sn.eps, dtype=dtype)

    def output_bn(self, name: str, dtype=None) -> gnn.BatchNorm:
        return gnn.BatchNorm(name=name, eps=self.out_eps, reduction_group=self.reduction_group,
                             num_devices=self.num_devices, dtype=dtype)


# G channel multipliers (x G_ch) per resolution stage, shared by BigGAN and BigGAN-deep:
# (in, out, upsample flags, output resolutions). BigGAN Tab. 4-9 (spec §1.8.1, §1.8.3) plus the
# 32/64 tables of BigGAN-PyTorch. BigGAN has one block per stage, BigGAN-deep G_depth blocks.
G_ARCH = {
    32: ([4, 4, 4], [4, 4, 4], [True] * 3, [8, 16, 32]),
    64: ([16, 16, 8, 4], [16, 8, 4, 2], [True] * 4, [8, 16, 32, 64]),
    128: ([16, 16, 8, 4, 2], [16, 8, 4, 2, 1], [True] * 5, [8, 16, 32, 64, 128]),
    256: ([16, 16, 8, 8, 4, 2], [16, 8, 8, 4, 2, 1], [True] * 6, [8, 16, 32, 64, 128, 256]),
    512: ([16, 16, 8, 8, 4, 2, 1], [16, 8, 8, 4, 2, 1, 1], [True] * 7,
          [8, 16, 32, 64, 128, 256, 512]),
}


def parse_attn(spec: Union[str, int], field: str) -> frozenset:
    """'64' / '16_32' / '0' (none) -> the set of resolutions that get a non-local block."""
    try:
        res = {int(s) for s in str(spec).split("_") if s.strip()}
    except ValueError:
        raise ValueError(f"{field} must be resolutions joined by '_' (e.g. '64', '32_64', '0' for "
                         f"none), got {spec!r}") from None
    return frozenset(res - {0})


def arch_row(tables: dict, resolution: int, ch: int, field: str) -> dict:
    """One row of a channel table {res: (in_mults, out_mults, flags, labels)}, times ch.

    An `in` multiplier of 'rgb' means the 3-channel image (BigGAN D's first block)."""
    if resolution not in tables:
        raise ValueError(f"{field}: resolution must be one of {sorted(tables)}, got {resolution}")
    ins, outs, flags, labels = tables[resolution]
    return {"in": [3 if m == "rgb" else m * ch for m in ins], "out": [m * ch for m in outs],
            "flags": list(flags), "res": list(labels)}


def upsample2x(x):
    """Nearest-neighbour x2 (torch F.interpolate(scale_factor=2)). [N,H,W,C] -> [N,2H,2W,C]."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def avg_pool2x(x):
    """2x2 average pool, stride 2 (torch nn.AvgPool2d(2)). [N,H,W,C] -> [N,H/2,W/2,C]."""
    return nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))


def output_layer(h, sn: SNSettings, bn: BNSettings, rgb_conv_channels: int, train: bool,
                 dtype=None):
    """G's final unconditional BN -> ReLU -> conv3x3 -> first 3 channels -> tanh (BigGAN
    Tab. 4-9; spec §1.8.1, §1.8.3). rgb_conv_channels=128 is the released deep-G TPU trick.

    Must be called inside a compact method (creates `output_layer_0` and `output_layer_2`).
    [N, H, W, C] -> [N, H, W, 3] in [-1, 1]."""
    h = nn.relu(bn.output_bn("output_layer_0", dtype)(h, train=train))
    h = sn.conv(rgb_conv_channels, 3, "output_layer_2", dtype)(h, train=train)
    return jnp.tanh(h[..., :3])


def minibatch_std_input(h, group: int, channels: int = 1):
    """D's optional minibatch-stddev maps before its last block (StyleGAN's epilogue, ProGAN §3;
    not in BigGAN, the CPU presets' d_mbstd_group): `channels` std maps (StyleGAN2's
    mbstd_num_channels: one per chunk of C / channels features) over groups of `group`
    CONSECUTIVE samples, so one D forward on [fake; real] never mixes the halves; 0 = off.
    [N, H, W, C] -> [N, H, W, C + channels] (unchanged when group is 0)."""
    if group and (channels < 1 or h.shape[-1] % channels):
        raise ValueError(f"d_mbstd_channels={channels} must divide the {h.shape[-1]} channels "
                         "of D's last block input")
    return ops.minibatch_std(h, group, channels, contiguous=True) if group else h


def projection_head(h, labels, sn: SNSettings, n_classes: int, train: bool):
    """Projection-D head (Miyato & Koyama; BigGAN Tab. 4-9, spec §1.7), in float32.

    h: [N, H, W, C] features, labels: int [N] -> (logits [N], pooled features [N, C]).
    D(x, y) = w . sum_HW relu(h) + b + <E_D[y], sum_HW relu(h)>. Creates `linear` and `embed`."""
    feats = jnp.sum(nn.relu(h.astype(jnp.float32)), axis=(1, 2))  # global SUM pool: [N, C]
    out = sn.dense(1, "linear", jnp.float32)(feats, train=train)[:, 0]  # [N]
    proj = jnp.sum(sn.embedding(n_classes, feats.shape[-1], "embed")(labels, train=train) * feats,
                   axis=-1)
    return out + proj, feats


def sigmas(mdl: nn.Module, names) -> dict:
    """{name: sv0} of the named SN submodules of `mdl` after its forward: in train mode the sigma
    this forward used, in eval mode the one of the last train forward (spec §2.11 monitoring)."""
    sn = mdl.variables.get(gnn.SN_COLLECTION, {})
    out = {}
    for name in names:
        node = sn
        for part in name.split("/"):
            node = node.get(part, {}) if isinstance(node, dict) or hasattr(node, "get") else {}
        if "sv0" in node:
            out[name] = node["sv0"][0]
    return out


def class_embedding(mdl: nn.Module, labels, y, n: int):
    """The shared class embedding `shared` (plain, no SN; BigGAN §3) of labels, or y as given.

    Without G_shared the class ids themselves are returned (the CBNs own per-layer tables)."""
    if (labels is None) == (y is None):
        raise ValueError(f"{type(mdl).__name__}: pass exactly one of labels (int [N]) and y (the "
                         "shared embedding [N, shared_dim])")
    if not getattr(mdl, "G_shared", True):
        if y is not None:
            raise ValueError(f"{type(mdl).__name__}: y= needs G_shared=True; pass labels")
        check_labels(type(mdl).__name__, labels, n)
        return labels
    if y is not None:
        checks.check_shape(f"{type(mdl).__name__}: y", y, (n, mdl.shared_dim))
        return y.astype(resolve_dtype(mdl.dtype) or y.dtype)
    check_labels(type(mdl).__name__, labels, n)
    return gnn.Embedding(mdl.n_classes, mdl.shared_dim, dtype=resolve_dtype(mdl.dtype),
                         name="shared")(labels)


def check_labels(name: str, labels, n: int) -> None:
    if labels is None or labels.shape != (n,) or not jnp.issubdtype(labels.dtype, jnp.integer):
        got = None if labels is None else f"{labels.dtype}{list(labels.shape)}"
        raise ValueError(f"{name}: labels must be int class indices [{n}], got {got}")


def resolve_dtype(dtype) -> Optional[Dtype]:
    """None / 'float32' / 'bfloat16' / a dtype -> a jnp dtype (None stays None)."""
    return None if dtype is None else jnp.dtype(dtype)
