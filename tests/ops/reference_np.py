"""Independent NumPy/SciPy references for the op tests (no gan_zoo code), NHWC."""

import numpy as np
import scipy.signal


def upfirdn2d_np(x, f, up=(1, 1), down=(1, 1), pad=(0, 0, 0, 0), gain=1.0, flip=False):
    """Zero-insert, pad/crop, true 2-D convolution (scipy, 'valid'), decimate. x [N,H,W,C]."""
    (ux, uy), (dx, dy), (x0, x1, y0, y1) = up, down, pad
    f = np.asarray(f, np.float64)
    f = np.outer(f, f) if f.ndim == 1 else f
    f = f * gain
    if flip:
        f = f[::-1, ::-1]
    n, h, w, c = x.shape
    z = np.zeros([n, h * uy, w * ux, c])
    z[:, ::uy, ::ux] = x
    z = np.pad(z, [(0, 0), (max(y0, 0), max(y1, 0)), (max(x0, 0), max(x1, 0)), (0, 0)])
    z = z[:, max(-y0, 0): z.shape[1] - max(-y1, 0), max(-x0, 0): z.shape[2] - max(-x1, 0)]
    out = np.stack([np.stack([scipy.signal.convolve2d(z[i, :, :, j], f, mode="valid")
                              for j in range(c)], -1) for i in range(n)])
    return out[:, ::dy, ::dx]


def correlate_np(x, w, groups=1):
    """'valid' cross-correlation (torch F.conv2d). x [N,H,W,C], w [kh,kw,C/groups,O]."""
    kh, kw, ig, o = w.shape
    og = o // groups
    n, h, wd, _ = x.shape
    out = np.zeros([n, h - kh + 1, wd - kw + 1, o])
    for g in range(groups):
        xs = x[..., g * ig:(g + 1) * ig]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, i:i + out.shape[1], j:j + out.shape[2]]
                out[..., g * og:(g + 1) * og] += patch @ w[i, j, :, g * og:(g + 1) * og]
    return out
