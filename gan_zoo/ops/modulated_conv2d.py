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


def demod_coefficients_of(weight, styles):
    """`demod_coefficients` of w' = s_i * w_ijk without forming the [N, kh, kw, I, O] tensor:
    sum_{i,k} (s_i w_ijk)^2 = sum_i s_i^2 (sum_k w_ijk^2), one [N, I] x [I, O] matmul (the same
    sum in another order; issue #20: the per-sample weights dominated the unfused layer's time).

    weight: [kh, kw, I, O]; styles: [N, I] -> [N, O].
    """
    w2 = jnp.sum(jnp.square(weight), axis=(0, 1))  # [I, O]
    # HIGHEST: float32 sums on every backend (a TPU/GPU default matmul would round to bf16/tf32).
    return jax.lax.rsqrt(jnp.matmul(jnp.square(styles), w2, precision=jax.lax.Precision.HIGHEST)
                         + 1e-8)


# fused_modconv="auto": the largest batch N at which the fused (grouped) conv runs, per backend
# and activation dtype (None: any N; 0: never).
# CPU: never. Measured with benchmarks/modconv_fused.py (XLA CPU, 1 thread, forward, float32,
# fused / unfused time; 2-core box shared with other jobs, median of 3 interleaved rounds):
# StyleGAN2 config-F 3x3 layers, 512 ch at 4^2-32^2, up 1 and 2: 1.03-1.69 at N = 1, 3.3-7.2
# at N = 2 (16.8 at N = 8, 4^2); StyleGAN3-T layers (36^2-148^2, 512-64 ch, padding 2):
# 0.94-1.37 at N = 1-4, i.e. no gain either way. Unfused also shards over the batch.
# GPU / TPU: nothing could be measured here, so the official inference rule (stylegan2-ada
# SynthesisBlock: fused when float32 or N == 1; the official training rule, never fused, is the
# trainer's to pass: recipes/stylegan.py).
_OFFICIAL = {"float32": None, "float16": 1, "bfloat16": 1}
FUSED_MAX_BATCH = {
    "cpu": {"float32": 0, "float16": 0, "bfloat16": 0},
    "gpu": _OFFICIAL,
    "tpu": _OFFICIAL,
}
FUSED_CHOICES = (True, False, "auto", None)


def use_fused(fused_modconv, x_shape, dtype, backend=None) -> bool:
    """Whether the modulated conv runs fused: True / False as given; "auto" / None from
    FUSED_MAX_BATCH[backend][dtype] and the batch x_shape[0] (backend: jax.default_backend())."""
    if fused_modconv not in FUSED_CHOICES or not isinstance(fused_modconv, (bool, str, type(None))):
        raise ValueError(f"modulated_conv2d: fused_modconv must be one of {FUSED_CHOICES}, got "
                         f"{fused_modconv!r}")
    if isinstance(fused_modconv, bool):
        return fused_modconv
    table = FUSED_MAX_BATCH.get(backend or jax.default_backend(), _OFFICIAL)
    limit = table.get(jnp.dtype(dtype).name, 1)
    return limit is None or x_shape[0] <= limit


def _grouped_conv(x, w, **conv_kwargs):
    """Per-sample weights as one grouped conv. x [N,H,W,I], w [N,kh,kw,I,O] -> [N,H',W',O]."""
    n, h, wd, i = x.shape
    o = w.shape[-1]
    x = x.transpose(1, 2, 0, 3).reshape(1, h, wd, n * i)  # [1, H, W, N*I]
    w = w.transpose(1, 2, 3, 0, 4).reshape(w.shape[1], w.shape[2], i, n * o)  # [kh, kw, I, N*O]
    y = conv_kwargs.pop("conv")(x, w, groups=n, **conv_kwargs)  # [1, H', W', N*O]
    return y.reshape(y.shape[1], y.shape[2], n, o).transpose(2, 0, 1, 3)


def _noise_nhwc(noise, x):
    """Noise in any shape the official op adds to its NCHW output, as an array that broadcasts
    against x [N, H, W, O]: [H, W] (noise_mode='const': one map for the batch and channels),
    [N or 1, H, W] and [N or 1, H, W, 1] (one map per sample), or [N or 1, H, W, O]."""
    n, h, w, o = x.shape
    shape = tuple(noise.shape)
    if len(shape) == 2:
        noise = noise[None, :, :, None]
    elif len(shape) == 3:
        noise = noise[..., None]
    ok = noise.ndim == 4 and noise.shape[0] in (1, n) and noise.shape[1:3] == (h, w) \
        and noise.shape[3] in (1, o)
    if not ok:
        raise ValueError(f"modulated_conv2d: noise must be [H, W], [N, H, W] or [N, H, W, 1|O] "
                         f"with N in (1, {n}), H, W = {h}, {w}, O = {o}; got shape {list(shape)}")
    return noise.astype(x.dtype)


def modulated_conv2d(x, weight, styles, noise=None, up=1, down=1, padding=0, resample_filter=None,
                     demodulate=True, flip_weight=True, fused_modconv="auto", impl="auto"):
    """StyleGAN2 modulated conv (`networks_stylegan2.modulated_conv2d`).

    Steps: 1. modulate, eq. 1: w'_ijk = s_i * w_ijk;
    2. demodulate, eq. 3: w''_ijk = w'_ijk * sigma_j^-1;
    3. conv2d_resample (up/down with resample_filter); 4. add noise ([N, H', W', 1], [H', W'], ...:
    see `_noise_nhwc`) if given.
    fused_modconv=True runs one grouped conv with per-sample weights; False scales the activations
    before and after a shared-weight conv (same result; the one that shards over the batch);
    "auto" / None picks by backend, dtype and batch (`use_fused`, `FUSED_MAX_BATCH`).
    """
    fused = use_fused(fused_modconv, x.shape, x.dtype)
    if dispatch.resolve_impl(impl, "modulated_conv2d") == "pallas":
        return dispatch.kernel("modulated_conv2d")(x, weight, styles, noise, up, down, padding,
                                                   resample_filter, demodulate, flip_weight,
                                                   fused)
    _check(x, weight, styles)
    ct = jnp.promote_types(x.dtype, jnp.float32)  # styles/demodulation in float32 (or wider)
    styles = styles.astype(ct)
    weight = weight.astype(ct)
    if x.dtype == jnp.float16 and demodulate:  # Official float16 overflow guard.
        kh, kw, i = weight.shape[:3]
        weight = weight * (1 / np.sqrt(i * kh * kw)
                           / jnp.max(jnp.abs(weight), axis=(0, 1, 2), keepdims=True))
        styles = styles / jnp.max(jnp.abs(styles), axis=1, keepdims=True)

    # Modulate: [N, kh, kw, I, O] (fused only; unfused needs just the coefficients).
    w = weight[None] * styles[:, None, None, :, None] if fused else None
    if not demodulate:
        dcoefs = None
    else:  # [N, O]
        dcoefs = demod_coefficients(w) if fused else demod_coefficients_of(weight, styles)
    resample = dict(f=resample_filter, up=up, down=down, padding=padding, flip_weight=flip_weight,
                    impl=impl)

    if not fused:
        # Scale activations: conv(x * s) * dcoef (+ noise).
        x = x * styles.astype(x.dtype)[:, None, None, :]
        x = conv2d_resample(x, weight.astype(x.dtype), **resample)
        if demodulate:
            x = x * dcoefs.astype(x.dtype)[:, None, None, :]
    else:
        if demodulate:
            w = w * dcoefs[:, None, None, None, :]
        x = _grouped_conv(x, w.astype(x.dtype), conv=conv2d_resample, **resample)
    return x if noise is None else x + _noise_nhwc(jnp.asarray(noise), x)


def modulated_conv2d_sg3(x, w, s, demodulate=True, padding=0, input_gain=None,
                         fused_modconv="auto"):
    """StyleGAN3 modulated conv (`networks_stylegan3.modulated_conv2d`, which is always fused).

    Steps: 1. if demodulating, pre-normalise w by its RMS per output channel and s by its RMS over
    the whole [N, I] tensor; 2. modulate; 3. demodulate (StyleGAN2 eq. 3); 4. multiply by input_gain
    (scalar, [I] or [N, I]; StyleGAN3 magnitude-EMA gain);
    5. grouped correlation with symmetric padding.
    fused_modconv: True / False / "auto" (None = "auto"), as for `modulated_conv2d`; unfused scales
    the activations by s * input_gain before a shared-weight correlation and multiplies the
    output by the demodulation coefficients (same result).
    Args: x [N, H, W, I]; w [kh, kw, I, O]; s [N, I]; padding: int.
    Returns: [N, H + 2*padding - kh + 1, W + 2*padding - kw + 1, O].
    """
    _check(x, w, s)
    if not isinstance(padding, int):
        raise ValueError(f"modulated_conv2d_sg3: padding must be an int, got {padding!r}")
    n, i = x.shape[0], w.shape[2]
    ct = jnp.promote_types(x.dtype, jnp.float32)  # float32 (or wider, e.g. float64 checks)
    w = w.astype(ct)
    s = s.astype(ct)
    if demodulate:
        w = w * jax.lax.rsqrt(jnp.mean(jnp.square(w), axis=(0, 1, 2), keepdims=True))
        s = s * jax.lax.rsqrt(jnp.mean(jnp.square(s)))
    gain = None if input_gain is None else jnp.broadcast_to(
        jnp.asarray(input_gain, jnp.float32), (n, i))  # [N, I]
    pad = dict(padding=((padding, padding), (padding, padding)))
    if not use_fused(fused_modconv, x.shape, x.dtype):
        dcoefs = demod_coefficients_of(w, s) if demodulate else None  # [N, O]
        # Scale activations: conv(x * s * gain, w) * dcoef.
        scale = s if gain is None else s * gain
        x = conv2d(x * scale.astype(x.dtype)[:, None, None, :], w.astype(x.dtype), **pad)
        return x if dcoefs is None else x * dcoefs.astype(x.dtype)[:, None, None, :]
    # Modulate: [N, kh, kw, I, O]; demodulate.
    wm = w[None] * s[:, None, None, :, None]
    if demodulate:
        wm = wm * demod_coefficients(wm)[:, None, None, None, :]
    if gain is not None:
        wm = wm * gain[:, None, None, :, None]
    return _grouped_conv(x, wm.astype(x.dtype), conv=conv2d, **pad)
