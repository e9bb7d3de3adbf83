"""Area resize and batch random crop as the StyleGAN-T code uses them (spec stylegan_xl_and_t.md
§2.4 D input path, §2.5 CLIP guidance pipeline).

resize_area = torch F.interpolate(mode='area') = adaptive_avg_pool2d, NHWC:
1. per axis, output i averages input rows [floor(i * in / out), ceil((i + 1) * in / out));
   bins overlap when in/out is not an integer and span 1-2 rows when upsampling;
2. applied as two [out, in] matrices (rows, then columns): separable and exact.
Output size: [N, size, size, C]. The identity when the input is already size x size.

random_crop = torchvision RandomCrop(size) applied to a batch tensor: ONE offset for the whole
batch, top ~ U{0..H - size}, left ~ U{0..W - size}.
"""

import jax
import jax.numpy as jnp
import numpy as np


def area_matrix(in_size: int, out_size: int) -> np.ndarray:
    """[out, in] averaging weights of adaptive_avg_pool along one axis (design time)."""
    m = np.zeros((out_size, in_size), np.float32)
    for i in range(out_size):
        start = (i * in_size) // out_size
        end = -((-(i + 1) * in_size) // out_size)  # ceil((i + 1) * in / out)
        m[i, start:end] = 1.0 / (end - start)
    return m


def resize_area(x, size: int):
    """[N, H, W, C] -> [N, size, size, C], torch mode='area' (computed in float32)."""
    if x.ndim != 4:
        raise ValueError(f"resize_area: x must be [N, H, W, C], got shape {tuple(x.shape)}")
    if x.shape[1:3] == (size, size):
        return x
    mh = jnp.asarray(area_matrix(x.shape[1], size))
    mw = jnp.asarray(area_matrix(x.shape[2], size))
    y = jnp.einsum("oh,nhwc->nowc", mh, x.astype(jnp.float32))  # rows
    y = jnp.einsum("pw,nowc->nopc", mw, y)  # columns
    return y.astype(x.dtype)


def random_crop(key, x, size: int):
    """[N, H, W, C] -> [N, size, size, C]: one uniform crop offset shared by the batch."""
    n, h, w, c = x.shape
    if h < size or w < size:
        raise ValueError(f"random_crop: crop {size} is larger than the image {h}x{w}")
    kh, kw = jax.random.split(key)
    top = jax.random.randint(kh, (), 0, h - size + 1)
    left = jax.random.randint(kw, (), 0, w - size + 1)
    return jax.lax.dynamic_slice(x, (0, top, left, 0), (n, size, size, c))
