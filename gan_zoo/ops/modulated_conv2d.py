"""Modulated convolution with demodulation: StyleGAN2 §2.2 eqs. 1-3, and the StyleGAN3 variant.

Layouts: x [N, H, W, I], weight [kh, kw, I, O], styles [N, I]; per-sample weights [N, kh, kw, I, O].
"""

import jax
import jax.numpy as jnp
import numpy as np

from gan_zoo import checks
from gan_zoo.ops import dispatch
from gan_zoo.ops.conv2d_resample import conv2d, conv2d_resample


def _check(x, weight, styles):
    checks.check_rank("modulated_conv2d: x", x, 4, "[N, H, W, I]")
    checks.check_rank("modulated_conv2d: weight", weight, 4, "[kh, kw, I, O]")
    checks.check_shape("modulated_conv2d: styles", styles, [x.shape[0], weight.shape[2]])
    if x.shape[-1] != weight.shape[2]:
        raise ValueError(f"modulated_conv2d: x has {x.shape[-1]} channels, weight expects "
                         f"{weight.shape[2]}")


def demod_coefficients(w):
    """StyleGAN2 eq. 3: sigma_j^-1 = rsqrt(sum_{i,k} w'_ijk^2 + eps).

    w: [N, kh, kw, I, O] -> [N, O].
    """
    return jax.lax.rsqrt(jnp.sum(jnp.square(w), axis=(1, 2, 3)) + 1e-8)


def _grouped_conv(x, w, **conv_kwargs):
    """Per-sample weights as one grouped conv. x [N,H,W,I], w [N,kh,kw,I,O] -> [N,H',W',O]."""
    n, h, wd, i = x.shape
    o = w.shape[-1]
    x = x.transpose(1, 2, 0, 3).reshape(1, h, wd, n * i)  # [1, H, W, N*I]
    w = w.transpose(1, 2, 3, 0, 4).reshape(w.shape[1], w.shape[2], i, n * o)  # [kh, kw, I, N*O]
    y = conv_kwargs.pop("conv")(x, w, groups=n, **conv_kwargs)  # [1, H', W', N*O]
    return y.reshape(y.shape[1], y.shape[2], n, o).transpose(2, 0, 1, 3)


def modulated_conv2d(x, weight, styles, noise=None, up=1, down=1, padding=0, resample_filter=None,
                     demodulate=True, flip_weight=True, fused_modconv=True, impl="auto"):
    """StyleGAN2 modulated conv (`networks_stylegan2.modulated_conv2d`).

    Steps: 1. modulate, eq. 1: w'_ijk = s_i * w_ijk;
    2. demodulate, eq. 3: w''_ijk = w'_ijk * sigma_j^-1;
    3. conv2d_resample (up/down with resample_filter); 4. add noise [N, H', W', 1] if given.
    fused_modconv=True runs one grouped conv with per-sample weights; False scales the activations
    before and after a shared-weight conv (same result; better when the batch is sharded).
    """
    if dispatch.resolve_impl(impl, "modulated_conv2d") == "pallas":
        return dispatch.kernel("modulated_conv2d")(x, weight, styles, noise, up, down, padding,
                                                   resample_filter, demodulate, flip_weight,
                                                   fused_modconv)
    _check(x, weight, styles)
    styles = styles.astype(jnp.float32)
    weight = weight.astype(jnp.float32)
    if x.dtype == jnp.float16 and demodulate:  # Official float16 overflow guard.
        kh, kw, i = weight.shape[:3]
        weight = weight * (1 / np.sqrt(i * kh * kw)
                           / jnp.max(jnp.abs(weight), axis=(0, 1, 2), keepdims=True))
        styles = styles / jnp.max(jnp.abs(styles), axis=1, keepdims=True)

    # Modulate: [N, kh, kw, I, O].
    w = weight[None] * styles[:, None, None, :, None] if (demodulate or fused_modconv) else None
    dcoefs = demod_coefficients(w) if demodulate else None  # [N, O]
    resample = dict(f=resample_filter, up=up, down=down, padding=padding, flip_weight=flip_weight,
                    impl=impl)

    if not fused_modconv:
        # Scale activations: conv(x * s) * dcoef (+ noise).
        x = x * styles.astype(x.dtype)[:, None, None, :]
        x = conv2d_resample(x, weight.astype(x.dtype), **resample)
        if demodulate:
            x = x * dcoefs.astype(x.dtype)[:, None, None, :]
        return x if noise is None else x + noise.astype(x.dtype)

    if demodulate:
        w = w * dcoefs[:, None, None, None, :]
    x = _grouped_conv(x, w.astype(x.dtype), conv=conv2d_resample, **resample)
    return x if noise is None else x + noise.astype(x.dtype)


def modulated_conv2d_sg3(x, w, s, demodulate=True, padding=0, input_gain=None):
    """StyleGAN3 modulated conv (`networks_stylegan3.modulated_conv2d`), always fused.

    Steps: 1. if demodulating, pre-normalise w by its RMS per output channel and s by its RMS over
    the whole [N, I] tensor; 2. modulate; 3. demodulate (StyleGAN2 eq. 3); 4. multiply by input_gain
    (scalar, [I] or [N, I]; StyleGAN3 magnitude-EMA gain);
    5. grouped correlation with symmetric padding.
    Args: x [N, H, W, I]; w [kh, kw, I, O]; s [N, I]; padding: int.
    Returns: [N, H + 2*padding - kh + 1, W + 2*padding - kw + 1, O].
    """
    _check(x, w, s)
    n, i = x.shape[0], w.shape[2]
    w = w.astype(jnp.float32)
    s = s.astype(jnp.float32)
    if demodulate:
        w = w * jax.lax.rsqrt(jnp.mean(jnp.square(w), axis=(0, 1, 2), keepdims=True))
        s = s * jax.lax.rsqrt(jnp.mean(jnp.square(s)))
    w = w[None] * s[:, None, None, :, None]  # [N, kh, kw, I, O]
    if demodulate:
        w = w * demod_coefficients(w)[:, None, None, None, :]
    if input_gain is not None:
        gain = jnp.broadcast_to(jnp.asarray(input_gain, jnp.float32), (n, i))  # [N, I]
        w = w * gain[:, None, None, :, None]
    if not isinstance(padding, int):
        raise ValueError(f"modulated_conv2d_sg3: padding must be an int, got {padding!r}")
    return _grouped_conv(x, w.astype(x.dtype), conv=conv2d,
                         padding=((padding, padding), (padding, padding)))
