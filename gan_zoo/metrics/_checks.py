"""Input validation shared by the metrics: clear ValueErrors instead of NaNs."""

import numpy as np


def images(x, name: str, channels=(3,), min_count: int = 1, min_size: int = 1) -> np.ndarray:
    """Checks uint8 NHWC images [N, H, W, C] (C in channels, N >= min_count, H, W >= min_size)."""
    shape = tuple(np.shape(x))
    dtype = getattr(x, "dtype", None)
    if dtype is None or np.dtype(dtype) != np.uint8:
        raise ValueError(f"{name}: expected uint8 images in 0..255 [N, H, W, C], got dtype {dtype}")
    if len(shape) != 4 or shape[-1] not in channels:
        raise ValueError(f"{name}: expected images [N, H, W, C] with C in {channels} (NHWC), got "
                         f"shape {shape}")
    if shape[0] < min_count:
        raise ValueError(f"{name}: needs at least {min_count} images, got {shape[0]}")
    if min(shape[1:3]) < min_size:
        raise ValueError(f"{name}: images must be at least {min_size}x{min_size}, got "
                         f"{shape[1]}x{shape[2]}")
    return x


def features(x, name: str, min_count: int = 2, dim: int = None) -> np.ndarray:
    """Checks finite float features [N, D] with N >= min_count; returns them as float64."""
    x = np.asarray(x)
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{name}: expected float features [N, D], got {x.dtype} {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name}: expected feature dimension {dim}, got {x.shape[1]}")
    if x.shape[0] < min_count:
        raise ValueError(f"{name}: needs at least {min_count} samples, got {x.shape[0]}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: features contain NaN or Inf")
    return x.astype(np.float64)


def positive_int(v, name: str) -> int:
    if int(v) != v or v < 1:
        raise ValueError(f"{name}: expected a positive integer, got {v!r}")
    return int(v)
