"""StyleGAN3 equivariance metrics (StyleGAN3 §3 / App. E; official `metrics/equivariance.py`).

EQ-T: PSNR (dB, signal range 2 for images in [-1, 1]) between G with its input grid translated by
-t (the input-layer transform M, M[:2, 2] = -t) and G's original output translated by t, over the
pixels valid after the shift. Integer variant: t in [-0.125, 0.125] of the image size, rounded to
whole pixels, one t per batch. Fractional variant (`eqt_frac`): t unrounded, the reference
translated with Lanczos-3 windowed-sinc interpolation. EQ-R (`eqr`): the input rotated by -angle,
the reference rotated by angle. PSNR = 20 log10(2) - 10 log10(MSE); +inf when MSE = 0.
"""

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from gan_zoo.metrics import _checks

TRANSLATE_MAX = 0.125  # fraction of the image size
ROTATE_MAX = 1.0  # fraction of pi (official eqr50k: any angle)


def integer_translation(x, tx, ty):
    """Shift NHWC images by (round(tx * W), round(ty * H)) pixels, zero fill -> (shifted, mask)."""
    _, h, w, _ = x.shape
    ix, iy = int(np.round(np.float32(tx * w))), int(np.round(np.float32(ty * h)))
    z, m = np.zeros_like(x), np.zeros_like(x)
    if abs(ix) < w and abs(iy) < h:
        src = x[:, max(-iy, 0):h + min(-iy, 0), max(-ix, 0):w + min(-ix, 0)]
        z[:, max(iy, 0):h + min(iy, 0), max(ix, 0):w + min(ix, 0)] = src
        m[:, max(iy, 0):h + min(iy, 0), max(ix, 0):w + min(ix, 0)] = 1
    return z, m


def psnr(sq_err_sum: float, mask_sum: float) -> float:
    """20 log10(2) - 10 log10(MSE) over masked pixels; +inf for MSE = 0."""
    if mask_sum <= 0:
        raise ValueError("equivariance: no valid pixels after the transform")
    mse = sq_err_sum / mask_sum
    return float("inf") if mse == 0 else float(20 * np.log10(2) - 10 * np.log10(mse))


def lanczos(x, a: int = 3):
    """Lanczos kernel sinc(x) sinc(x / a) on |x| < a, 0 elsewhere (normalised sinc)."""
    x = np.asarray(x, np.float64)
    return np.where(np.abs(x) < a, np.sinc(x) * np.sinc(x / a), 0.0)


def lanczos_resample(x, src_x, src_y, a: int = 3):
    """z[n, i, j] = sum_q x[n, q] L(src - q) / sum L, separable Lanczos-a interpolation at the
    source pixel coordinates (src_x[i, j], src_y[i, j]) (column, row; pixel centres at integers).

    Returns (z, mask): mask is 1 where every tap lies inside the image (the valid region), else 0
    (z is 0 there). x: [N, H, W, C] -> z, mask [N, H, W, C].
    """
    n, h, w, c = x.shape
    x0, y0 = np.floor(src_x).astype(np.int64), np.floor(src_y).astype(np.int64)
    taps = np.arange(-a + 1, a + 1)  # 2a taps around floor(src)
    qx, qy = x0[..., None] + taps, y0[..., None] + taps  # [H, W, 2a]
    fx, fy = lanczos(src_x[..., None] - qx, a), lanczos(src_y[..., None] - qy, a)
    fx, fy = fx / fx.sum(-1, keepdims=True), fy / fy.sum(-1, keepdims=True)
    valid = ((qx.min(-1) >= 0) & (qx.max(-1) < w) & (qy.min(-1) >= 0) & (qy.max(-1) < h))
    z = np.zeros((n, h, w, c), np.float64)
    for ky in range(2 * a):
        for kx in range(2 * a):
            wgt = (fy[..., ky] * fx[..., kx] * valid)[None, :, :, None]  # [1, H, W, 1]
            z += wgt * x[:, np.clip(qy[..., ky], 0, h - 1), np.clip(qx[..., kx], 0, w - 1)]
    mask = np.broadcast_to(valid[None, :, :, None], x.shape).astype(np.float64)
    return z, mask


def fractional_translation(x, tx, ty, a: int = 3):
    """Translate NHWC images by (tx * W, ty * H) pixels with Lanczos-a (windowed-sinc)
    interpolation, as StyleGAN3's `apply_fractional_translation` -> (translated, valid mask)."""
    _, h, w, _ = x.shape
    rows, cols = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64),
                             indexing="ij")
    return lanczos_resample(x, cols - tx * w, rows - ty * h, a)


def fractional_rotation(x, angle: float, a: int = 3):
    """Rotate square NHWC images by `angle` radians about the centre (content at p moves to
    R(angle) p; x = column, y = row) with Lanczos-a interpolation -> (rotated, valid mask).

    Simplification: StyleGAN3's `apply_fractional_rotation` band-limits with a 4x-upsampled
    affine filter and bilinear grid sampling; this samples the windowed sinc directly, so EQ-R
    values are close to, not identical with, the official ones.
    """
    _, h, w, _ = x.shape
    if h != w:
        raise ValueError(f"fractional_rotation: needs square images, got {h}x{w}")
    c = (w - 1) / 2
    rows, cols = np.meshgrid(np.arange(h, dtype=np.float64) - c,
                             np.arange(w, dtype=np.float64) - c, indexing="ij")
    cos, sin = np.cos(angle), np.sin(angle)
    src_x = cos * cols + sin * rows + c  # R(-angle) p
    src_y = -sin * cols + cos * rows + c
    return lanczos_resample(x, src_x, src_y, a)


def translation_matrix(t) -> np.ndarray:
    """Input-layer transform that translates the output by t (fractions of the image size)."""
    m = np.eye(3)
    m[:2, 2] = -np.asarray(t, np.float64)
    return m


def rotation_matrix(angle: float) -> np.ndarray:
    """[[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]] (StyleGAN3 `rotation_matrix`)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _equivariance(name: str, synthesize: Callable, sample_latents: Callable, key,
                  num_samples: int, batch_size: int, draw: Callable) -> float:
    """PSNR over all batches of G(latents, transform) vs reference(G(latents, I)).

    draw(key, orig) -> (transform [3, 3], ref, mask) for one batch.
    """
    num_samples = _checks.positive_int(num_samples, f"{name}: num_samples")
    err = mask_sum = 0.0
    for i, start in enumerate(range(0, num_samples, batch_size)):
        n = min(batch_size, num_samples - start)
        k_lat, k_t = jax.random.split(jax.random.fold_in(key, i))
        latents = sample_latents(k_lat, n)
        orig = np.asarray(synthesize(latents, jnp.eye(3)), np.float64)
        transform, ref, mask = draw(k_t, orig)
        img = np.asarray(synthesize(latents, jnp.asarray(transform, jnp.float32)), np.float64)
        if not (np.all(np.isfinite(orig)) and np.all(np.isfinite(img))):
            raise ValueError(f"{name}: generated images contain NaN or Inf")
        err += float(np.sum(np.square(ref - img) * mask))
        mask_sum += float(np.sum(mask))
    return psnr(err, mask_sum)


def eqt_int(synthesize: Callable, sample_latents: Callable, key, num_samples: int,
            batch_size: int = 16, translate_max: float = TRANSLATE_MAX) -> float:
    """EQ-T (integer translation) in dB.

    synthesize: (latents, transform [3, 3]) -> images NHWC float in [-1, 1], where `transform`
    is the input layer's transform (StyleGAN3 `synthesis.input.transform`); identity = no-op.
    sample_latents: (key, n) -> latents passed to synthesize (e.g. ws).
    """
    def draw(k_t, orig):
        res = orig.shape[2]
        t = (np.asarray(jax.random.uniform(k_t, (2,)), np.float64) * 2 - 1) * translate_max
        t = np.round(t * res) / res
        return (translation_matrix(t),) + integer_translation(orig, t[0], t[1])
    return _equivariance("eqt_int", synthesize, sample_latents, key, num_samples, batch_size,
                         draw)


def eqt_frac(synthesize: Callable, sample_latents: Callable, key, num_samples: int,
             batch_size: int = 16, translate_max: float = TRANSLATE_MAX) -> float:
    """EQ-T (fractional translation, StyleGAN3 App. E) in dB: t ~ U[-0.125, 0.125]² of the
    image size, unrounded; the reference is the Lanczos-3 translated original. Args as eqt_int."""
    def draw(k_t, orig):
        t = (np.asarray(jax.random.uniform(k_t, (2,)), np.float64) * 2 - 1) * translate_max
        return (translation_matrix(t),) + fractional_translation(orig, t[0], t[1])
    return _equivariance("eqt_frac", synthesize, sample_latents, key, num_samples, batch_size,
                         draw)


def eqr(synthesize: Callable, sample_latents: Callable, key, num_samples: int,
        batch_size: int = 16, rotate_max: float = ROTATE_MAX) -> float:
    """EQ-R (StyleGAN3 App. E) in dB: angle ~ U[-rotate_max, rotate_max] * pi, input transform
    rotation_matrix(-angle), reference the Lanczos-rotated original. Args as eqt_int."""
    def draw(k_t, orig):
        angle = float((jax.random.uniform(k_t, ()) * 2 - 1) * rotate_max * np.pi)
        return (rotation_matrix(-angle),) + fractional_rotation(orig, angle)
    return _equivariance("eqr", synthesize, sample_latents, key, num_samples, batch_size, draw)
