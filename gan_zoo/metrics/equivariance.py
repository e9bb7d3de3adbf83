"""StyleGAN3 equivariance metrics (StyleGAN3 §3 / App. E; official `metrics/equivariance.py`).

EQ-T: PSNR (dB, signal range 2 for images in [-1, 1]) between G with its input grid translated by
-t (the input-layer transform M, M[:2, 2] = -t) and G's original output translated by t, over the
pixels valid after the shift. Integer variant: t in [-0.125, 0.125] of the image size, rounded to
whole pixels, one t per batch. Fractional variant (`eqt_frac`): t unrounded, the reference
translated with Lanczos-3 windowed-sinc interpolation. PSNR = 20 log10(2) - 10 log10(MSE); +inf
when MSE = 0.

EQ-R (`eqr`, App. E.3): one angle ~ U[-pi, pi] per batch; G runs with its input rotated by
-angle. A rotated pixel grid only shares part of its band with the original one, so neither
image is compared raw: the original goes through R (upsample 4x with the oriented windowed-sinc
lowpass of `affine_bandlimit_filter`, which passes only frequencies inside both the input's and
the rotated output's Nyquist squares; rotate by bilinear sampling of the upsampled image), the
rotated G output through R* (the same band limit as a plain filter, no motion), and PSNR is
taken over the pixels valid in both. This follows the official protocol (Lanczos a = 3, filter
half-width 2a = 6 input pixels, designed by FFT on a 64-pixel-radius grid, polyphase-normalised;
masks from the filter footprints). Remaining differences from the official code:
- angles are drawn with JAX keys, and the sign convention is the standard one (content at p
  moves to R(angle) p, x = column, y = row; G's transform is rotation_matrix(-angle) here, the
  official rotation_matrix(angle)); the angle distribution is symmetric, so the expected value
  is the same;
- the upsampling runs in float32 (gan_zoo.ops), the rest in float64 (official: float32);
- the filter design and the bilinear / nearest sampling are re-derived from the official
  semantics in NHWC, not bit-matched against it (no golden vectors of this metric exist).
"""

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from gan_zoo import ops
from gan_zoo.metrics import _checks

TRANSLATE_MAX = 0.125  # fraction of the image size
ROTATE_MAX = 1.0  # fraction of pi (official eqr50k: any angle)
LANCZOS_A = 3  # a of the Lanczos windows (translation taps, rotation filter windows)
UP = 4  # upsampling factor of the band-limited rotation (StyleGAN3 App. E.3)


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


def _lanczos_window(x, a: int):
    """sinc(x / a) on |x| < a, 0 elsewhere (the Lanczos window alone)."""
    return np.where(np.abs(x) < a, np.sinc(np.asarray(x, np.float64) / a), 0.0)


def affine_bandlimit_filter(lin, up: int, a: int = LANCZOS_A, amax: int = 2 * LANCZOS_A,
                            design_radius: int = 64):
    """The 2-D lowpass of a band-limited affine resampling (StyleGAN3 App. E.3).

    The ideal lowpass of the input pixel grid (sinc(x) sinc(y): cutoff 0.5 cycles per pixel)
    convolved with the same lowpass in the output grid's coordinates `lin @ [x, y]` (so only
    frequencies representable on both grids pass), times the convolution of the two Lanczos-a
    windows in those frames. Both convolutions are taken by FFT on a [2 R up - 1]^2 grid (R =
    design_radius input pixels). lin: [2, 2], input -> output coordinates (x = column, y = row).

    Returns taps at 1/up input pixels, [2 amax up - 1]^2 centred; each of the up x up polyphase
    components sums to 1 / up^2 (an upsampling gain of up^2 gives every phase DC gain 1).
    """
    n = 2 * design_radius * up - 1  # odd: offsets symmetric about 0
    t = ((np.arange(n) + n // 2) % n - n // 2) / up  # FFT order: offset 0 at index 0
    yi, xi = np.meshgrid(t, t, indexing="ij")  # input frame
    lin = np.asarray(lin, np.float64)
    xo, yo = lin[0, 0] * xi + lin[0, 1] * yi, lin[1, 0] * xi + lin[1, 1] * yi  # output frame
    conv = lambda u, v: np.real(np.fft.ifft2(np.fft.fft2(u) * np.fft.fft2(v)))  # noqa: E731
    f = conv(np.sinc(xi) * np.sinc(yi), np.sinc(xo) * np.sinc(yo))  # ideal lowpass pair
    w = conv(_lanczos_window(xi, a) * _lanczos_window(yi, a),
             _lanczos_window(xo, a) * _lanczos_window(yo, a))  # window pair
    h = np.fft.fftshift(f * w)  # offset 0 at index n // 2
    r = amax * up - 1
    h = h[n // 2 - r:n // 2 + r + 1, n // 2 - r:n // 2 + r + 1]  # [2 amax up - 1]^2
    phase = np.arange(2 * r + 1) % up  # polyphase component of each tap (per axis)
    for py in range(up):
        for px in range(up):
            sel = np.ix_(phase == py, phase == px)
            h[sel] /= h[sel].sum() * up * up
    return h


def _bilinear(y, ky, kx):
    """y [N, Hy, Wy, C] sampled at continuous pixel indices (ky, kx) [H, W] (pixel k's centre at
    k), zeros outside -> [N, H, W, C]."""
    _, hy, wy, _ = y.shape
    y0, x0 = np.floor(ky).astype(np.int64), np.floor(kx).astype(np.int64)
    out = 0.0
    for iy in (y0, y0 + 1):
        for ix in (x0, x0 + 1):
            inside = (iy >= 0) & (iy < hy) & (ix >= 0) & (ix < wy)
            wgt = (1 - np.abs(ky - iy)) * (1 - np.abs(kx - ix)) * inside  # [H, W]
            out = out + wgt[None, :, :, None] * y[:, np.clip(iy, 0, hy - 1),
                                                  np.clip(ix, 0, wy - 1)]
    return out


def _centred_grid(size: int):
    """(x, y) [size, size] pixel centres relative to the image centre (x = column, y = row)."""
    c = np.arange(size, dtype=np.float64) - (size - 1) / 2
    y, x = np.meshgrid(c, c, indexing="ij")
    return x, y


def affine_resample(x, lin, up: int = UP, a: int = LANCZOS_A):
    """Band-limited affine resampling of square NHWC images (StyleGAN3 App. E.3, operator R):
    content at p moves to lin @ p (about the centre) -> (resampled, valid mask).

    1. Design the oriented lowpass h = affine_bandlimit_filter(lin, up).
    2. Upsample x by `up` with h (zero insertion + FIR, ops.upsample2d; p = len(h) // 2 extra
       samples each side), so that content between pixels is a band-limited interpolation.
    3. Sample the upsampled image bilinearly at lin^-1 p for every output pixel p.
    4. Mask: output pixels whose nearest upsampled sample is at least 2p + 1 samples inside
       (every filter tap that made it lay inside the input image).
    """
    _, s, w, _ = x.shape
    if s != w:
        raise ValueError(f"affine_resample: needs square images, got {s}x{w}")
    h = affine_bandlimit_filter(lin, up, a, 2 * a)
    p = h.shape[0] // 2
    y = np.asarray(ops.upsample2d(jnp.asarray(x, jnp.float32), jnp.asarray(h, jnp.float32),
                                  up=up, padding=p, impl="xla"), np.float64)
    n_up = y.shape[1]  # s * up + 2p
    cx, cy = _centred_grid(s)
    inv = np.linalg.inv(np.asarray(lin, np.float64))
    sx, sy = inv[0, 0] * cx + inv[0, 1] * cy, inv[1, 0] * cx + inv[1, 1] * cy  # source points
    # Input pixel i (centre offset i - (s - 1)/2) sits at upsampled index up * i + p + up / 2.
    kx, ky = up * sx + n_up / 2, up * sy + n_up / 2
    z = _bilinear(y, ky, kx)
    margin = 2 * p + 1
    ry, rx = np.rint(ky), np.rint(kx)  # nearest sample (round half to even)
    valid = ((ry >= margin) & (ry < n_up - margin) & (rx >= margin) & (rx < n_up - margin))
    return z, np.broadcast_to(valid[None, :, :, None], z.shape).astype(np.float64)


def pseudo_affine_resample(x, lin, a: int = LANCZOS_A):
    """The band limit of `affine_resample(., lin)`, applied in its output frame without moving
    anything (StyleGAN3 App. E.3, operator R*): x filtered with affine_bandlimit_filter(lin^-1,
    up=1), zero padded -> (filtered, mask of the pixels at least len(h) // 2 from the border)."""
    h = affine_bandlimit_filter(np.linalg.inv(np.asarray(lin, np.float64)), 1, a, 2 * a)
    z = np.asarray(ops.filter2d(jnp.asarray(x, jnp.float32), jnp.asarray(h, jnp.float32),
                                impl="xla"), np.float64)
    c = h.shape[0] // 2
    mask = np.zeros_like(z)
    mask[:, c:-c, c:-c] = 1
    return z, mask


def fractional_rotation(x, angle: float, up: int = UP, a: int = LANCZOS_A):
    """Rotate square NHWC images by `angle` radians about the centre (content at p moves to
    R(angle) p; x = column, y = row), band-limited: `affine_resample` -> (rotated, mask)."""
    return affine_resample(x, rotation_matrix(angle)[:2, :2], up, a)


def pseudo_rotation(x, angle: float, a: int = LANCZOS_A):
    """The band limit `fractional_rotation(., angle)` imposes, applied to already rotated
    images without rotating them: `pseudo_affine_resample` -> (filtered, mask)."""
    return pseudo_affine_resample(x, rotation_matrix(angle)[:2, :2], a)


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
    """PSNR over all batches between the two images `compare` returns.

    draw(key, orig) -> (transform [3, 3], compare) for one batch; compare(img) -> (a, b, mask)
    with img = G(latents, transform) and orig = G(latents, I).
    """
    num_samples = _checks.positive_int(num_samples, f"{name}: num_samples")
    err = mask_sum = 0.0
    for i, start in enumerate(range(0, num_samples, batch_size)):
        n = min(batch_size, num_samples - start)
        k_lat, k_t = jax.random.split(jax.random.fold_in(key, i))
        latents = sample_latents(k_lat, n)
        orig = np.asarray(synthesize(latents, jnp.eye(3)), np.float64)
        transform, compare = draw(k_t, orig)
        img = np.asarray(synthesize(latents, jnp.asarray(transform, jnp.float32)), np.float64)
        if not (np.all(np.isfinite(orig)) and np.all(np.isfinite(img))):
            raise ValueError(f"{name}: generated images contain NaN or Inf")
        a, b, mask = compare(img)
        err += float(np.sum(np.square(a - b) * mask))
        mask_sum += float(np.sum(mask))
    return psnr(err, mask_sum)


def _against(ref, mask):
    """compare(img) -> (ref, img, mask): img against a fixed reference."""
    return lambda img: (ref, img, mask)


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
        return translation_matrix(t), _against(*integer_translation(orig, t[0], t[1]))
    return _equivariance("eqt_int", synthesize, sample_latents, key, num_samples, batch_size,
                         draw)


def eqt_frac(synthesize: Callable, sample_latents: Callable, key, num_samples: int,
             batch_size: int = 16, translate_max: float = TRANSLATE_MAX) -> float:
    """EQ-T (fractional translation, StyleGAN3 App. E) in dB: t ~ U[-0.125, 0.125]² of the
    image size, unrounded; the reference is the Lanczos-3 translated original. Args as eqt_int."""
    def draw(k_t, orig):
        t = (np.asarray(jax.random.uniform(k_t, (2,)), np.float64) * 2 - 1) * translate_max
        return translation_matrix(t), _against(*fractional_translation(orig, t[0], t[1]))
    return _equivariance("eqt_frac", synthesize, sample_latents, key, num_samples, batch_size,
                         draw)


def eqr(synthesize: Callable, sample_latents: Callable, key, num_samples: int,
        batch_size: int = 16, rotate_max: float = ROTATE_MAX) -> float:
    """EQ-R (StyleGAN3 App. E.3) in dB: angle ~ U[-rotate_max, rotate_max] * pi per batch; G's
    input transform rotation_matrix(-angle) (its output turns by angle). PSNR of
    R(orig) = fractional_rotation(orig, angle) against R*(img) = pseudo_rotation(img, angle),
    over the pixels valid in both. Args as eqt_int."""
    def draw(k_t, orig):
        angle = float((jax.random.uniform(k_t, ()) * 2 - 1) * rotate_max * np.pi)
        ref, ref_mask = fractional_rotation(orig, angle)

        def compare(img):
            pseudo, pseudo_mask = pseudo_rotation(img, angle)
            return ref, pseudo, ref_mask * pseudo_mask
        return rotation_matrix(-angle), compare
    return _equivariance("eqr", synthesize, sample_latents, key, num_samples, batch_size, draw)
