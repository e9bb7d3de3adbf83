"""StyleGAN3 Fourier-feature input (StyleGAN3 §3.1, App. F "SynthesisInput"), pure jnp, NHWC."""

import jax.numpy as jnp
import numpy as np


def sampling_grid(size, sampling_rate):
    """affine_grid(align_corners=False) of theta = diag(0.5 * size / sampling_rate).

    size: int or (width, height). Returns [H, W, 2] with (x, y) coordinates in the units of the
    input's frequencies: pixel centres (2i + 1) / W - 1, scaled by 0.5 * W / sampling_rate.
    """
    sw, sh = np.broadcast_to(np.asarray(size), [2])
    gx = (2 * np.arange(sw, dtype=np.float32) + 1) / sw - 1
    gy = (2 * np.arange(sh, dtype=np.float32) + 1) / sh - 1
    gx = gx * np.float32(0.5 * sw / sampling_rate)
    gy = gy * np.float32(0.5 * sh / sampling_rate)
    return jnp.stack(jnp.meshgrid(gx, gy, indexing="xy"), axis=-1).astype(jnp.float32)


def input_transforms(t, transform):
    """Learned rotation + translation then the user transform: m_r @ m_t @ transform.

    t: [N, 4] affine output (r_c, r_s, t_x, t_y), normalised here by |t[:2]|.
    transform: [3, 3] user-specified inverse transform. Returns [N, 3, 3].
    """
    t = t / jnp.linalg.norm(t[:, :2], axis=1, keepdims=True)
    n = t.shape[0]
    one, zero = jnp.ones([n]), jnp.zeros([n])
    m_r = jnp.stack([jnp.stack([t[:, 0], -t[:, 1], zero], -1),
                     jnp.stack([t[:, 1], t[:, 0], zero], -1),
                     jnp.stack([zero, zero, one], -1)], axis=1)  # Inverse rotation.
    m_t = jnp.stack([jnp.stack([one, zero, -t[:, 2]], -1),
                     jnp.stack([zero, one, -t[:, 3]], -1),
                     jnp.stack([zero, zero, one], -1)], axis=1)  # Inverse translation.
    return m_r @ m_t @ transform[None]


def fourier_features(t, freqs, phases, transform, weight, size, sampling_rate, bandwidth):
    """StyleGAN3 input layer given the affine output t = affine(w).

    Steps: 1. transforms = m_r @ m_t @ transform; 2. phases += freqs @ T[:2, 2],
    freqs = freqs @ T[:2, :2]; 3. amplitudes damp |f| beyond the bandwidth (linear ramp to 0 at
    sampling_rate / 2); 4. x = sin(2 pi (grid . f + phase)) * amplitude;
    5. x @ (weight / sqrt(C))^T.
    Args: t [N, 4]; freqs [C, 2]; phases [C]; transform [3, 3]; weight [C, C] (torch [out, in]).
    Returns: [N, H, W, C].
    """
    transforms = input_transforms(t, transform)  # [N, 3, 3]
    phases = phases[None] + (freqs[None] @ transforms[:, :2, 2:])[..., 0]  # [N, C]
    freqs = freqs[None] @ transforms[:, :2, :2]  # [N, C, 2]
    amplitudes = jnp.clip(1 - (jnp.linalg.norm(freqs, axis=2) - bandwidth)
                          / (sampling_rate / 2 - bandwidth), 0, 1)  # [N, C]
    grid = sampling_grid(size, sampling_rate)  # [H, W, 2]
    x = jnp.einsum("hwk,nck->nhwc", grid, freqs)  # [N, H, W, C]
    x = x + phases[:, None, None, :]
    x = jnp.sin(x * (np.pi * 2)) * amplitudes[:, None, None, :]
    c = weight.shape[0]
    return x @ (weight / np.sqrt(c)).T
