"""Minibatch standard deviation (ProGAN §3; StyleGAN2 `MinibatchStdLayer`), NHWC."""

import jax.numpy as jnp

from gan_zoo import checks


def minibatch_std(x, group_size=4, num_channels=1, contiguous=False):
    """Appends `num_channels` feature maps of the per-group standard deviation.

    Groups are STRIDED as in the official reshape(G, -1, ...): sample i is in group i % (N // G);
    contiguous=True groups consecutive samples (i // G), which keeps the halves of one D forward
    on [fake; real] apart (BigGAN's D) when each half is a multiple of G.
    Steps: 1. G = min(group_size, N) (None: G = N); 2. split C into num_channels chunks of
    c = C / F; 3. std over the group, sqrt(var + 1e-8); 4. mean over (H, W, c) -> [n, F];
    5. tile to [N, H, W, F] and concatenate.
    Args: x [N, H, W, C]. Returns: [N, H, W, C + num_channels].
    """
    checks.check_rank("minibatch_std: x", x, 4, "[N, H, W, C]")
    n, h, w, c = x.shape
    g = n if group_size is None else min(group_size, n)
    f = num_channels
    if n % g:
        raise ValueError(f"minibatch_std: batch {n} is not divisible by group_size={g}")
    if f < 1 or c % f:
        raise ValueError(f"minibatch_std: {c} channels not divisible by num_channels={f}")
    y = x.astype(jnp.float32)
    if contiguous:
        y = y.reshape(n // g, g, h, w, f, c // f).swapaxes(0, 1)  # [G, n, H, W, F, c]
    else:
        y = y.reshape(g, n // g, h, w, f, c // f)  # [G, n, H, W, F, c]
    y = y - jnp.mean(y, axis=0)
    y = jnp.sqrt(jnp.mean(jnp.square(y), axis=0) + 1e-8)  # [n, H, W, F, c]
    y = jnp.mean(y, axis=(1, 2, 4))  # [n, F]
    y = jnp.repeat(y, g, axis=0) if contiguous else jnp.tile(y, (g, 1))
    y = y[:, None, None, :]  # [N, 1, 1, F]
    y = jnp.broadcast_to(y, (n, h, w, f)).astype(x.dtype)
    return jnp.concatenate([x, y], axis=-1)
