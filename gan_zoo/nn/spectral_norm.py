"""Spectral normalisation with the BigGAN-PyTorch `layers.SN` semantics. Miyato et al. 2018;
BigGAN §3, App. C (spec biggan.md §1.3).

State (collection `spectral_norm`, per layer): `u0` [1, O], the left singular vector estimate
(starts as randn, NOT normalised) and `sv0` [1], the last sigma (logging only, never read).
EVERY forward, eval included, runs one power iteration from u0 with W viewed as the torch matrix
W_t [O, -1] and divides W by sigma = v W_t^T u^T. Only train-mode forwards write u and sigma back.

In the HWIO / [in, out] layout the matrix used here is w_mat [K, O] = W_t^T with its K rows
permuted (torch flattens OIHW as (I, kh, kw), we flatten HWIO as (kh, kw, I)). v is permuted the
same way, so u, sigma and W / sigma are identical to the torch ones.
"""

from typing import Callable, Optional, Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from gan_zoo import checks
from gan_zoo.nn._conv import Padding, conv_nhwc, conv_padding, kernel_hw

SN_COLLECTION = "spectral_norm"
Dtype = jnp.dtype
Initializer = Callable
_HI = lax.Precision.HIGHEST  # sigma in full f32 even where the default matmul precision is bf16


def l2_normalize(x, eps: float = 1e-12):
    """torch F.normalize along the last axis: x / max(||x||_2, eps)."""
    norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True))
    return x / jnp.maximum(norm, eps)


def power_iteration(w_mat, u, eps: float = 1e-12):
    """One power-iteration step, BigGAN-PyTorch `power_iteration` with num_svs = 1.

    Args:
      w_mat: [K, O], the transposed torch matrix W_t = weight.view(O, -1).
      u: [1, O], the current left singular vector estimate (need not be normalised).
    Returns:
      (sigma, u_new [1, O], v [1, K]). u_new and v carry no gradient; sigma = v W_t^T u_new^T is
      differentiable in w_mat only, as in torch (the iteration runs under no_grad).
    """
    w_sg = lax.stop_gradient(w_mat.astype(jnp.float32))
    u = lax.stop_gradient(u.astype(jnp.float32))
    v = l2_normalize(jnp.matmul(u, w_sg.T, precision=_HI), eps)  # [1, K]: v = u W_t
    u_new = l2_normalize(jnp.matmul(v, w_sg, precision=_HI), eps)  # [1, O]: u = v W_t^T
    wu = jnp.matmul(w_mat.astype(jnp.float32), u_new.T, precision=_HI)  # [K, 1]
    sigma = jnp.matmul(v, wu, precision=_HI)[0, 0]  # sigma = v W_t^T u^T
    return sigma, u_new, v


def _check_sn_args(name: str, num_svs: int, num_itrs: int) -> None:
    if num_svs != 1:
        raise NotImplementedError(f"{name}: num_svs={num_svs} is not supported; only num_svs=1 "
                                  "(the value BigGAN uses) is implemented")
    if num_itrs < 1:
        raise ValueError(f"{name}: num_itrs must be >= 1, got {num_itrs}")


def sn_weight(mdl: nn.Module, w, w_mat, train: bool):
    """W / sigma for `mdl` (which has num_svs, num_itrs, eps fields); manages u0 and sv0.

    w: the stored weight (any layout); w_mat: the same weight as [K, O] (see module docstring).
    """
    name = type(mdl).__name__
    _check_sn_args(name, mdl.num_svs, mdl.num_itrs)
    out = w_mat.shape[1]
    u0 = mdl.variable(SN_COLLECTION, "u0",
                      lambda: jax.random.normal(mdl.make_rng("params"), (1, out), jnp.float32))
    sv0 = mdl.variable(SN_COLLECTION, "sv0", lambda: jnp.ones((1,), jnp.float32))
    update = train and not mdl.is_initializing()
    if update and not mdl.is_mutable_collection(SN_COLLECTION):
        raise ValueError(f"{name}: train=True updates u0/sv0; call apply(..., "
                         f"mutable=['{SN_COLLECTION}']) or pass train=False")
    # Power iteration. Torch writes u0 in place only in train mode, so in eval mode every one of
    # the num_itrs iterations restarts from the stored u0 (and gives the same sigma).
    u = u0.value
    for _ in range(mdl.num_itrs):
        sigma, u_new, _ = power_iteration(w_mat, u, mdl.eps)
        if train:
            u = u_new
    if update:
        u0.value = u
        sv0.value = jnp.reshape(lax.stop_gradient(sigma), (1,))
    return w / sigma


class SNDense(nn.Module):
    """Spectrally normalised linear layer. BigGAN-PyTorch `SNLinear`; BigGAN §3 (SN in G and D).

    x: [..., I] -> [..., features]. Params: `weight` [I, O], `bias` [O];
    collection `spectral_norm`: `u0` [1, O], `sv0` [1].
    """

    features: int  # O, number of output features
    use_bias: bool = True  # add a bias (False for the BigGAN ccbn gain/bias projections)
    num_svs: int = 1  # singular values tracked (only 1 is supported)
    num_itrs: int = 1  # power iterations per forward
    eps: float = 1e-12  # epsilon of F.normalize in the power iteration
    weight_init: Initializer = nn.initializers.orthogonal()  # BigGAN §3: orthogonal init
    bias_init: Initializer = nn.initializers.zeros_init()  # bias init
    dtype: Optional[Dtype] = None  # compute dtype; None: promote input and params

    @nn.compact
    def __call__(self, x, *, train: bool):
        if x.ndim < 1:
            raise ValueError(f"SNDense: x must have a feature axis [..., I], got {x.shape}")
        w = self.param("weight", self.weight_init, (x.shape[-1], self.features), jnp.float32)
        # Spectral normalisation: w_mat = weight [I, O].
        w = sn_weight(self, w, w, train)
        b = self.param("bias", self.bias_init, (self.features,), jnp.float32) \
            if self.use_bias else None
        x, w, b = nn.dtypes.promote_dtype(x, w, b, dtype=self.dtype)
        y = x @ w
        return y if b is None else y + b


class SNConv(nn.Module):
    """Spectrally normalised 2-D conv. BigGAN-PyTorch `SNConv2d`; BigGAN §3.

    x: [N, H, W, I] -> [N, H', W', features]. Params: `weight` [kh, kw, I, O], `bias` [O];
    collection `spectral_norm`: `u0` [1, O], `sv0` [1].
    """

    features: int  # O, number of output channels
    kernel_size: Union[int, Sequence[int]] = 3  # k or (kh, kw)
    strides: int = 1  # spatial stride
    padding: Padding = "SAME"  # 'SAME' (= torch padding k//2 for odd k), 'VALID', int or pairs
    use_bias: bool = True  # add a bias (False for the attention 1x1 convs)
    num_svs: int = 1  # singular values tracked (only 1 is supported)
    num_itrs: int = 1  # power iterations per forward
    eps: float = 1e-12  # epsilon of F.normalize in the power iteration
    weight_init: Initializer = nn.initializers.orthogonal()  # orthogonal on [kh*kw*I, O]
    bias_init: Initializer = nn.initializers.zeros_init()  # bias init
    dtype: Optional[Dtype] = None  # compute dtype; None: promote input and params

    @nn.compact
    def __call__(self, x, *, train: bool):
        checks.check_rank("SNConv: x", x, 4, "[N, H, W, C]")
        kh, kw = kernel_hw("SNConv", self.kernel_size)
        padding = conv_padding("SNConv", self.padding)
        shape = (kh, kw, x.shape[-1], self.features)
        w = self.param("weight", self.weight_init, shape, jnp.float32)  # [kh, kw, I, O]
        # Spectral normalisation: w_mat [kh*kw*I, O] (rows permuted vs torch; sigma identical).
        w = sn_weight(self, w, w.reshape(-1, self.features), train)
        b = self.param("bias", self.bias_init, (self.features,), jnp.float32) \
            if self.use_bias else None
        x, w, b = nn.dtypes.promote_dtype(x, w, b, dtype=self.dtype)
        y = conv_nhwc(x, w, self.strides, padding)
        return y if b is None else y + b


class SNEmbedding(nn.Module):
    """Spectrally normalised embedding table. BigGAN-PyTorch `SNEmbedding`; BigGAN §3 (projection
    D's class embedding, spec §1.7).

    The torch matrix is the table itself, W_t = weight [num_embeddings, features], so the u vector
    has one entry per class. ids: int [...] -> [..., features]. Params: `weight`
    [num_embeddings, features]; collection `spectral_norm`: `u0` [1, num_embeddings], `sv0` [1].
    """

    num_embeddings: int  # number of classes
    features: int  # embedding dimension
    num_svs: int = 1  # singular values tracked (only 1 is supported)
    num_itrs: int = 1  # power iterations per forward
    eps: float = 1e-12  # epsilon of F.normalize in the power iteration
    weight_init: Initializer = nn.initializers.orthogonal()  # BigGAN §3: orthogonal init
    dtype: Optional[Dtype] = None  # dtype of the returned rows; None: float32

    @nn.compact
    def __call__(self, ids, *, train: bool):
        if not jnp.issubdtype(ids.dtype, jnp.integer):
            raise ValueError(f"SNEmbedding: ids must be integer class indices, got {ids.dtype}")
        shape = (self.num_embeddings, self.features)
        w = self.param("weight", self.weight_init, shape, jnp.float32)  # [n_classes, D]
        # Spectral normalisation: w_mat = weight^T [D, n_classes].
        w = sn_weight(self, w, w.T, train)
        out = jnp.take(w, ids, axis=0)
        return out if self.dtype is None else out.astype(self.dtype)
