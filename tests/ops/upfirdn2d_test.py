"""upfirdn2d and its wrappers against an independent SciPy reference; errors; gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from gan_zoo import ops
from tests.ops.reference_np import upfirdn2d_np

CASES = [  # (shape NHWC, filter shape, up, down, padding [x0,x1,y0,y1], flip)
    ((1, 5, 6, 2), (4,), (2, 2), (1, 1), (2, 1, 2, 1), False),
    ((2, 7, 5, 1), (3, 5), (1, 1), (2, 2), (1, 2, 0, 3), True),
    ((1, 6, 6, 3), (6,), (2, 2), (2, 2), (3, 2, 3, 2), False),
    ((1, 4, 9, 2), (12,), (4, 4), (2, 2), (-3, -5, 1, -2), False),
    ((1, 5, 4, 1), (2, 3), (1, 3), (2, 1), (0, 0, 1, 1), False),
]


@pytest.mark.parametrize("shape,fshape,up,down,pad,flip", CASES)
def test_matches_scipy(shape, fshape, up, down, pad, flip):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    f = rng.uniform(0.1, 1.1, fshape).astype(np.float32)
    got = ops.upfirdn2d(x, f, up=list(up), down=list(down), padding=list(pad), flip_filter=flip,
                        gain=3.0)
    # A 1-D filter is separable: gain**(1/2) per axis, i.e. `gain` for the outer product.
    want = upfirdn2d_np(x, f, up, down, pad, gain=3.0, flip=flip)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_output_size_formula():
    x = jnp.zeros([1, 10, 7, 1])
    y = ops.upfirdn2d(x, jnp.ones([4, 3]), up=[2, 3], down=[3, 2], padding=[1, 2, 3, 4])
    # W' = (W*upx + x0 + x1 - fw + downx) // downx, likewise H'.
    assert y.shape == (1, (10 * 3 + 7 - 4 + 2) // 2, (7 * 2 + 3 - 3 + 3) // 3, 1)


@pytest.mark.parametrize("fn,size", [(ops.upsample2d, 16), (ops.downsample2d, 4),
                                     (ops.filter2d, 8)])
def test_wrappers_keep_exact_sizes(fn, size):
    x = jnp.ones([1, 8, 8, 2])
    y = fn(x, ops.setup_filter([1, 3, 3, 1]))
    assert y.shape == (1, size, size, 2)
    # A normalised filter (with the wrappers' gains) preserves a constant image in the interior.
    np.testing.assert_allclose(y[0, size // 2, size // 2], 1.0, rtol=1e-6)


def test_setup_filter_quirks():
    assert ops.setup_filter([1, 3, 3, 1]).shape == (4, 4)  # < 8 taps: outer product.
    assert ops.setup_filter([1, 3, 3, 1], separable=True).shape == (4,)
    assert ops.setup_filter(np.ones(8)).shape == (8,)  # >= 8 taps stay separable.
    np.testing.assert_allclose(ops.setup_filter([1, 2, 1], gain=4).sum(), 4, rtol=1e-6)


def test_separable_equals_outer_product():
    x = np.random.default_rng(1).standard_normal([1, 6, 6, 2]).astype(np.float32)
    f = np.array([1.0, 2.0, 5.0, 3.0], np.float32)
    a = ops.upfirdn2d(x, f, up=2, padding=2, gain=4)
    b = ops.upfirdn2d(x, np.outer(f, f), up=2, padding=2, gain=4)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_finite_difference_gradient():
    x = jax.random.normal(jax.random.key(0), [1, 5, 5, 2])
    f = jnp.array([1.0, 3.0, 3.0, 1.0]) / 8
    with jax.enable_x64(True):
        fn = lambda x: ops.upfirdn2d(x, f.astype(jnp.float64), up=2, down=1, padding=[2, 1, 2, 1])
        check_grads(fn, (x.astype(jnp.float64),), order=1, modes=["rev"])


@pytest.mark.parametrize("kwargs,match", [
    (dict(x=np.zeros([4, 4, 1])), "rank-4"),
    (dict(padding=[1, 2, 3]), "padding"),
    (dict(up=0), "up"),
    (dict(down=[2, 2, 2]), "down"),
    (dict(f=np.ones([2, 2, 2])), "filter"),
    (dict(padding=-5), "no output"),
])
def test_bad_input(kwargs, match):
    args = dict(x=np.zeros([1, 4, 4, 1], np.float32), f=np.ones([3], np.float32))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        ops.upfirdn2d(**args)
