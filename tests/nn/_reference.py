"""Float64 numpy references in the torch layouts (NCHW activations, OIHW / [out, in] weights).

Kept independent of gan_zoo.nn so that the tests also check the layout conversions a PyTorch
converter will rely on (HWIO -> OIHW is transpose(3, 2, 0, 1); [in, out] -> [out, in] is .T).
"""

import numpy as np


def hwio_to_oihw(w):
    return np.asarray(w, np.float64).transpose(3, 2, 0, 1)


def nhwc_to_nchw(x):
    return np.asarray(x, np.float64).transpose(0, 3, 1, 2)


def nchw_to_nhwc(x):
    return np.asarray(x).transpose(0, 2, 3, 1)


def normalize(x, eps=1e-12):
    """torch F.normalize over the last axis."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


def sn_step(w_t, u0, eps=1e-12):
    """BigGAN-PyTorch power_iteration + W_(): w_t is weight.view(out, -1). -> (sigma, u, v)."""
    w_t = np.asarray(w_t, np.float64)
    v = normalize(np.asarray(u0, np.float64) @ w_t, eps)
    u = normalize(v @ w_t.T, eps)
    sigma = float((v @ w_t.T @ u.T)[0, 0])
    return sigma, u, v


def conv2d_nchw(x, w, pad):
    """torch F.conv2d, stride 1, symmetric zero padding `pad`. x [N,C,H,W], w [O,C,kh,kw]."""
    x = np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    _, _, kh, kw = w.shape
    ho, wo = x.shape[2] - kh + 1, x.shape[3] - kw + 1
    out = np.zeros((x.shape[0], w.shape[0], ho, wo))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nchw,oc->nohw", x[:, :, i:i + ho, j:j + wo], w[:, :, i, j])
    return out


def batch_norm_train_nchw(x, eps):
    """F.batch_norm(training=True) without affine: (x - mean) / sqrt(biased var + eps)."""
    x = np.asarray(x, np.float64)
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)
    return (x - mean) / np.sqrt(var + eps), mean.ravel(), var.ravel()
