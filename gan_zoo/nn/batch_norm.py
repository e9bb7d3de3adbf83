"""Batch norm with an explicit reduction group, and BigGAN's class-conditional BN. BigGAN §3 and
App. B-C (spec biggan.md §1.2, §2.5, §4); BigGAN-PyTorch `layers.bn` / `layers.ccbn`.

Semantics (torch F.batch_norm, momentum 0.1): train mode normalises with the batch mean and the
BIASED batch variance, and updates `stored_mean` / `stored_var` (collection `batch_stats`) as
running = (1 - m) * running + m * batch, using the UNBIASED variance; eval mode normalises with
the stored statistics. Statistics are computed in float32.

Reduction group (which samples share statistics):
  "global": the whole batch. Under `jax.jit` with the batch sharded over a mesh this is
      cross-replica BN (BigGAN §2.5); jit sees the global batch, so no psum is needed.
  "device": virtual groups of k = N / num_devices consecutive samples, i.e. per-device BN when the
      batch is sharded evenly over num_devices devices.
  int k: virtual groups of k consecutive samples; each group is normalised with its own statistics
      and the running statistics move towards the average of the group statistics.
"""

from typing import Callable, Optional, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan_zoo import checks
from gan_zoo.nn.embedding import Embedding
from gan_zoo.nn.spectral_norm import SNDense

BN_COLLECTION = "batch_stats"
Dtype = jnp.dtype
ReductionGroup = Union[str, int]


def resolve_group_size(reduction_group: ReductionGroup, batch: int,
                       num_devices: Optional[int] = None, name: str = "BatchNorm") -> int:
    """Number of consecutive samples k that share statistics (see the module docstring).

    num_devices (used by "device" only) defaults to jax.device_count(); pass the size of the mesh's
    data axis when the mesh has other axes.
    """
    if reduction_group == "global":
        return batch
    if reduction_group == "device":
        n_dev = jax.device_count() if num_devices is None else num_devices
        if n_dev < 1 or batch % n_dev:
            raise ValueError(f"{name}: reduction_group='device' needs the batch size {batch} to be "
                             f"divisible by num_devices={n_dev}")
        return batch // n_dev
    if isinstance(reduction_group, (bool, str)) or not isinstance(reduction_group, int) \
            or reduction_group < 1:
        raise ValueError(f"{name}: reduction_group must be 'global', 'device' or a positive int, "
                         f"got {reduction_group!r}")
    if batch % reduction_group:
        raise ValueError(f"{name}: reduction_group={reduction_group} (group size) must divide the "
                         f"batch size {batch}")
    return reduction_group


def grouped_moments(x, group_size: int):
    """Per-group mean and BIASED variance over (samples of the group, spatial axes), in float32.

    x: [N, ..., C] with N divisible by group_size. Returns (mean, var), each [G, 1, ..., 1, C]
    with G = N / group_size, ready to broadcast against x grouped as [G, k, ..., C].
    """
    xg = x.astype(jnp.float32).reshape((-1, group_size) + x.shape[1:])  # [G, k, ..., C]
    axes = tuple(range(1, xg.ndim - 1))
    mean = jnp.mean(xg, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(xg - mean), axis=axes, keepdims=True)  # two-pass, biased
    return mean, var


class _BatchNormBase(nn.Module):
    """Shared fields and the normalisation step of BatchNorm and ConditionalBatchNorm."""

    momentum: float = 0.1  # m in running = (1 - m) * running + m * batch (torch convention)
    eps: float = 1e-5  # added to the variance (BigGAN-PyTorch 1e-5; the paper says 1e-4)
    reduction_group: ReductionGroup = "global"  # "global", "device" or a group size k
    num_devices: Optional[int] = None  # devices for "device"; None: jax.device_count()
    dtype: Optional[Dtype] = None  # output dtype; None: the input dtype
    # False: no `batch_stats`; batch statistics in train AND eval mode (StyleGAN-T §3.2
    # BatchNormLocal, "virtual batch norm" without running statistics).
    running_stats: bool = True

    def _normalize(self, x, train: bool):
        """(x - mean) / sqrt(var + eps) in float32: batch stats in train mode, stored in eval."""
        name = type(self).__name__
        if not self.running_stats:
            return self._batch_normalize(x, name)[0]
        c = x.shape[-1]
        mean_v = self.variable(BN_COLLECTION, "stored_mean", lambda: jnp.zeros((c,), jnp.float32))
        var_v = self.variable(BN_COLLECTION, "stored_var", lambda: jnp.ones((c,), jnp.float32))
        if not train:
            # Eval: the stored statistics.
            return (x.astype(jnp.float32) - mean_v.value) * jax.lax.rsqrt(var_v.value + self.eps)
        # Train: per-group batch statistics.
        y, mean, var, n = self._batch_normalize(x, name)
        if not self.is_initializing():
            self._update_stats(mean_v, var_v, mean, var * (n / (n - 1)), name)
        return y

    def _batch_normalize(self, x, name: str):
        """x normalised with its per-group statistics -> (y, mean, biased var, values/group)."""
        k = resolve_group_size(self.reduction_group, x.shape[0], self.num_devices, name)
        n = k * int(np.prod(x.shape[1:-1]))  # values per channel per group
        if n < 2:
            raise ValueError(f"{name}: train mode needs more than 1 value per channel per group, "
                             f"got group size {k} and input shape {tuple(x.shape)}")
        mean, var = grouped_moments(x, k)
        xg = x.astype(jnp.float32).reshape(mean.shape[:1] + (k,) + x.shape[1:])
        return ((xg - mean) * jax.lax.rsqrt(var + self.eps)).reshape(x.shape), mean, var, n

    def _update_stats(self, mean_v, var_v, mean, var_unbiased, name: str) -> None:
        """Running-stat update with the group-averaged batch mean and unbiased variance."""
        if not self.is_mutable_collection(BN_COLLECTION):
            raise ValueError(f"{name}: train=True updates the running statistics; call apply(..., "
                             f"mutable=['{BN_COLLECTION}']) or pass train=False")
        c = mean.shape[-1]
        m = self.momentum
        mean_v.value = (1 - m) * mean_v.value + m * jnp.mean(mean.reshape(-1, c), axis=0)
        var_v.value = (1 - m) * var_v.value + m * jnp.mean(var_unbiased.reshape(-1, c), axis=0)

    def _check_x(self, x) -> None:
        if x.ndim < 2:
            raise ValueError(f"{type(self).__name__}: x must be [N, ..., C] (rank >= 2), "
                             f"got shape {tuple(x.shape)}")


class BatchNorm(_BatchNormBase):
    """Batch norm with learnable per-channel affine. BigGAN-PyTorch `layers.bn` (G's final BN).

    x: [N, ..., C] -> same shape. Params: `gain` [C] (init 1), `bias` [C] (init 0);
    collection `batch_stats`: `stored_mean` [C], `stored_var` [C].
    """

    use_affine: bool = True  # learnable `gain` and `bias`; False: plain normalisation

    @nn.compact
    def __call__(self, x, *, train: bool):
        self._check_x(x)
        c = x.shape[-1]
        y = self._normalize(x, train)
        if self.use_affine:
            y = y * self.param("gain", nn.initializers.ones_init(), (c,), jnp.float32)
            y = y + self.param("bias", nn.initializers.zeros_init(), (c,), jnp.float32)
        return y.astype(self.dtype or x.dtype)


class ConditionalBatchNorm(_BatchNormBase):
    """Class-conditional BN, BigGAN App. B / spec §1.2; BigGAN-PyTorch `layers.ccbn`.

    out = BN(x) * (1 + gain(y)) + bias(y), where `gain` and `bias` are bias-free SN linear maps of
    the conditioning vector y (projection="sn_dense", y: [N, D]) or plain class embeddings
    (projection="embedding", y: int [N]). x: [N, ..., C] -> same shape.
    Params: `gain/weight`, `bias/weight` ([D, C] or [num_classes, C]); collections `batch_stats`:
    `stored_mean` [C], `stored_var` [C]; `spectral_norm` (sn_dense): `gain/u0`, `gain/sv0`, ...
    """

    projection: str = "sn_dense"  # "sn_dense" (BigGAN shared embedding) or "embedding" (per layer)
    num_classes: Optional[int] = None  # table size for projection="embedding"
    num_svs: int = 1  # SN projections: singular values tracked (only 1 is supported)
    num_itrs: int = 1  # SN projections: power iterations per forward
    sn_eps: float = 1e-12  # SN projections: F.normalize epsilon
    weight_init: Callable = nn.initializers.orthogonal()  # BigGAN §3: orthogonal init

    @nn.compact
    def __call__(self, x, y, *, train: bool):
        self._check_x(x)
        c = x.shape[-1]
        gain_fn, bias_fn = self._projections(c, train)
        # Per-sample gain and bias from the conditioning: [N, C] -> [N, 1, ..., 1, C].
        if self.projection == "sn_dense":
            checks.check_shape("ConditionalBatchNorm: y", y, (x.shape[0], None))
        else:
            checks.check_shape("ConditionalBatchNorm: y (class ids)", y, (x.shape[0],))
        bshape = (x.shape[0],) + (1,) * (x.ndim - 2) + (c,)
        gain = 1 + gain_fn(y).astype(jnp.float32).reshape(bshape)  # centred on 1 (App. B)
        bias = bias_fn(y).astype(jnp.float32).reshape(bshape)
        # Normalise, then modulate.
        out = self._normalize(x, train) * gain + bias
        return out.astype(self.dtype or x.dtype)

    def _projections(self, c: int, train: bool):
        """The `gain` and `bias` submodules, as functions of y."""
        if self.projection == "sn_dense":
            kw = dict(features=c, use_bias=False, num_svs=self.num_svs, num_itrs=self.num_itrs,
                      eps=self.sn_eps, weight_init=self.weight_init)
            gain, bias = SNDense(name="gain", **kw), SNDense(name="bias", **kw)
            return (lambda y: gain(y, train=train)), (lambda y: bias(y, train=train))
        if self.projection == "embedding":
            if self.num_classes is None:
                raise ValueError("ConditionalBatchNorm: projection='embedding' needs num_classes")
            kw = dict(num_embeddings=self.num_classes, features=c, weight_init=self.weight_init)
            return Embedding(name="gain", **kw), Embedding(name="bias", **kw)
        raise ValueError(f"ConditionalBatchNorm: projection must be 'sn_dense' or 'embedding', "
                         f"got {self.projection!r}")
