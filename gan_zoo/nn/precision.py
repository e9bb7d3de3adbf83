"""Mixed precision of the StyleGAN family and ProGAN: which layers compute in a reduced dtype.

Official semantics (NVlabs/stylegan3 `training/networks_stylegan2.py`, `networks_stylegan3.py`;
StyleGAN2-ADA §"mixed precision"): the `num_fp16_res` highest resolutions of G's synthesis and of D
run in float16, activations clamped to +-conv_clamp; parameters stay float32 and are cast at use;
the mapping network, styles, demodulation coefficients, normalisations, the image skips, D's
epilogue, losses and EMAs stay float32. Here the reduced dtype is configurable: bfloat16 (same
exponent range as float32, so no overflow guard is needed) or float16 (as official).

Loss scaling (float16 only; the official PyTorch code scales nothing and relies on the clamp): a
static scale S multiplies the cotangent of the loss, so the backward pass through the float16
layers carries S * dL/dx (small cotangents leave float16's subnormal range), and the parameter
gradients are divided by S in float32 where they leave the network (`loss_scaled`). Static, not
dynamic: the trainer stops on a non-finite gradient (STYLE "Errors") rather than skipping steps.
"""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp

FP16_DTYPES = ("bfloat16", "float16", "float32", "auto")  # values of the `fp16_dtype` fields
# Static loss scale of float16 training (2^10: lifts cotangents down to ~6e-8 into float16's
# normal range, >= 6e-5, while the clamped activations keep S * cotangent far below 65504).
FP16_LOSS_SCALE = 1024.0


def reduced_dtype(name: str) -> str:
    """Name of the reduced dtype: 'bfloat16' | 'float16' | 'float32' (= no reduction) as given;
    'auto' = bfloat16 on GPU/TPU and float32 on CPU (the official StyleGAN3 layer also reduces
    only on CUDA)."""
    if name not in FP16_DTYPES:
        raise ValueError(f"fp16_dtype must be one of {FP16_DTYPES}, got {name!r}")
    if name == "auto":
        return "bfloat16" if jax.default_backend() in ("gpu", "tpu") else "float32"
    return name


def _check_num(num_fp16_res) -> int:
    if not isinstance(num_fp16_res, int) or num_fp16_res < 0:
        raise ValueError(f"num_fp16_res must be an int >= 0, got {num_fp16_res!r}")
    return num_fp16_res


def fp16_resolution(img_resolution: int, num_fp16_res: int) -> int:
    """Lowest resolution in reduced precision, official max(2 ** (log2(R) + 1 - n), 8); 2R when
    n = 0 (no block)."""
    n = _check_num(num_fp16_res)
    return max(2 ** (int(math.log2(img_resolution)) + 1 - n), 8)


def block_dtype(res: int, img_resolution: int, num_fp16_res: int, fp16_dtype: str) -> str:
    """Compute dtype name of a StyleGAN2 / ProGAN block at resolution `res` (official
    use_fp16 = res >= fp16_resolution)."""
    if res >= fp16_resolution(img_resolution, num_fp16_res):
        return reduced_dtype(fp16_dtype)
    return "float32"


def sg3_layer_dtype(sampling_rate: float, img_resolution: int, num_fp16_res: int,
                    fp16_dtype: str) -> str:
    """Compute dtype name of a StyleGAN3 layer: official use_fp16 = (sampling_rate * 2^n > R),
    with the layer's output sampling rate."""
    if sampling_rate * 2 ** _check_num(num_fp16_res) > img_resolution:
        return reduced_dtype(fp16_dtype)
    return "float32"


def as_dtype(name: str):
    """jnp dtype of a block's dtype name."""
    return jnp.dtype(name)


def resolve_loss_scale(setting: float, *networks) -> float:
    """config.train.loss_scale: > 0 as given; 0 = auto: FP16_LOSS_SCALE when one of `networks`
    runs layers in float16 (num_fp16_res > 0), else 1 (bfloat16 and float32 need none)."""
    if setting < 0:
        raise ValueError(f"train.loss_scale must be >= 0 (0 = auto), got {setting}")
    if setting:
        return float(setting)
    fp16 = [n for n in networks if getattr(n, "num_fp16_res", 0)
            and reduced_dtype(getattr(n, "fp16_dtype", "float32")) == "float16"]
    return FP16_LOSS_SCALE if fp16 else 1.0


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def scale_grad(x, scale: float):
    """Identity whose backward multiplies the cotangent by `scale` (in the cotangent's dtype)."""
    return x


def _scale_grad_fwd(x, scale):
    return x, None


def _scale_grad_bwd(scale, _, g):
    return (g * jnp.asarray(scale, g.dtype),)


scale_grad.defvjp(_scale_grad_fwd, _scale_grad_bwd)


def loss_scaled(loss_fn, scale: float):
    """loss_fn(params, *args) -> (loss, aux) with static loss scaling: same values and the same
    gradient w.r.t. params, but the backward pass in between runs on S-times larger cotangents
    (dL/d(loss) = S, params' cotangents / S in float32). scale 1 returns loss_fn itself."""
    if scale == 1:
        return loss_fn

    def scaled(params, *args, **kwargs):
        params = jax.tree.map(lambda p: scale_grad(p, 1.0 / scale), params)
        loss, aux = loss_fn(params, *args, **kwargs)
        return scale_grad(loss, scale), aux

    return scaled


def loss_scaled_phases(phases, scale: float) -> tuple:
    """The recipe's Phases with every loss_fn wrapped by `loss_scaled` (scale 1: unchanged)."""
    return tuple(dataclasses.replace(p, loss_fn=loss_scaled(p.loss_fn, scale)) for p in phases)
