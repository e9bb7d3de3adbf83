"""Small validation helpers that raise user-facing `ValueError`s naming what was expected."""

import numbers
from typing import Sequence


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def check_rank(name: str, x, rank: int, layout: str = "") -> None:
    """Raises ValueError unless `x` has `rank` dimensions. `layout` is e.g. "[N, H, W, C]"."""
    if x.ndim != rank:
        hint = f" {layout}" if layout else ""
        raise ValueError(f"{name}: expected a rank-{rank} array{hint}, got shape {tuple(x.shape)}")


def check_shape(name: str, x, expected: Sequence) -> None:
    """Raises ValueError unless x.shape matches `expected` (None entries match anything)."""
    shape = tuple(x.shape)
    ok = len(shape) == len(expected) and all(e is None or e == s for e, s in zip(expected, shape))
    if not ok:
        exp = "[" + ", ".join("?" if e is None else str(e) for e in expected) + "]"
        raise ValueError(f"{name}: expected shape {exp}, got {list(shape)}")


def int_pair(name: str, value) -> tuple[int, int]:
    """An int or an [x, y] pair of positive ints -> (x, y); official lists are [x, y]."""
    if _is_int(value):
        pair = (value, value)
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        pair = tuple(value)
    else:
        raise ValueError(f"{name}: expected an int or an [x, y] pair, got {value!r}")
    if not all(_is_int(v) and v >= 1 for v in pair):
        raise ValueError(f"{name}: expected positive integers, got {value!r}")
    return int(pair[0]), int(pair[1])


def padding4(name: str, value) -> tuple[int, int, int, int]:
    """int p, [px, py] or [x0, x1, y0, y1] -> (x0, x1, y0, y1). Negative values crop."""
    if _is_int(value):
        pad = (value,) * 4
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        pad = (value[0], value[0], value[1], value[1])
    elif isinstance(value, (list, tuple)) and len(value) == 4:
        pad = tuple(value)
    else:
        raise ValueError(f"{name}: expected an int, [px, py] or [x0, x1, y0, y1], got {value!r}")
    if not all(_is_int(v) for v in pad):
        raise ValueError(f"{name}: expected integer padding, got {value!r}")
    return tuple(int(v) for v in pad)
