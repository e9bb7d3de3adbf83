"""Private helpers shared by the conv layers of `gan_zoo.nn`: argument checks and an NHWC conv."""

import numbers
from typing import Sequence, Union

import jax

Padding = Union[str, int, Sequence[Sequence[int]]]
_DN = ("NHWC", "HWIO", "NHWC")


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def kernel_hw(name: str, kernel_size) -> tuple[int, int]:
    """int k or (kh, kw) of positive ints -> (kh, kw)."""
    if _is_int(kernel_size):
        kernel_size = (kernel_size, kernel_size)
    if (not isinstance(kernel_size, (tuple, list)) or len(kernel_size) != 2
            or not all(_is_int(k) and k >= 1 for k in kernel_size)):
        raise ValueError(f"{name}: kernel_size must be a positive int or (kh, kw), "
                         f"got {kernel_size!r}")
    return int(kernel_size[0]), int(kernel_size[1])


def conv_padding(name: str, padding: Padding):
    """'SAME' / 'VALID', int p (torch: p on every side) or ((top, bottom), (left, right))."""
    if isinstance(padding, str):
        if padding.upper() not in ("SAME", "VALID"):
            raise ValueError(f"{name}: padding must be 'SAME' or 'VALID', got {padding!r}")
        return padding.upper()
    if _is_int(padding) and padding >= 0:
        return ((int(padding),) * 2,) * 2
    ok = (isinstance(padding, (tuple, list)) and len(padding) == 2
          and all(isinstance(p, (tuple, list)) and len(p) == 2 and all(_is_int(v) for v in p)
                  for p in padding))
    if not ok:
        raise ValueError(f"{name}: padding must be 'SAME', 'VALID', an int >= 0 or "
                         f"((top, bottom), (left, right)), got {padding!r}")
    return tuple(tuple(int(v) for v in p) for p in padding)


def conv_nhwc(x, w, strides: int, padding):
    """Cross-correlation (torch F.conv2d). x: [N, H, W, I], w: [kh, kw, I, O] -> [N, H', W', O]."""
    return jax.lax.conv_general_dilated(
        x, w, window_strides=(strides, strides), padding=padding, dimension_numbers=_DN)
