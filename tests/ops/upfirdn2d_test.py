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
        fn = jax.jit(lambda x: ops.upfirdn2d(x, f.astype(jnp.float64), up=2, down=1,
                                             padding=[2, 1, 2, 1]))
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


# Polyphase execution (issue #20): odd geometries against the SciPy reference, with the filter
# given as numpy (constant taps, custom backward) and as a traced jnp argument (autodiff).
GRID = [  # (shape NHWC, filter shape or None, up [x, y], down [x, y], padding, flip)
    ((1, 5, 7, 2), (3,), (1, 3), (2, 1), (-1, 2, 3, -2), False),
    ((1, 6, 5, 1), (2,), (4, 1), (1, 3), (3, -1, 0, 1), True),
    ((2, 4, 6, 1), (5, 4), (2, 3), (3, 2), (1, 2, -2, 3), False),
    ((1, 7, 4, 2), (1, 6), (3, 1), (1, 4), (0, 4, 2, 2), True),
    ((1, 5, 5, 1), (7,), (1, 1), (4, 4), (2, 3, 3, 2), False),
    ((1, 5, 4, 1), (8,), (4, 4), (1, 1), (4, 3, -2, -5), False),
    ((1, 6, 6, 1), "rank1", (2, 2), (2, 2), (1, 1, 1, 1), True),
    ((1, 4, 5, 2), None, (2, 3), (1, 2), (-1, 0, 1, -1), False),
]


def _grid_case(i):
    shape, fshape, up, down, pad, flip = GRID[i]
    rng = np.random.default_rng(10 + i)
    x = rng.standard_normal(shape).astype(np.float32)
    if fshape == "rank1":  # a 2-D outer product: run as two 1-D passes when concrete
        f = np.outer([1.0, 2.0, 1.5], [0.5, 3.0, 1.0]).astype(np.float32)
    else:
        f = None if fshape is None else rng.uniform(-0.2, 1.1, fshape).astype(np.float32)
    kw = dict(up=list(up), down=list(down), padding=list(pad), flip_filter=flip, gain=2.0)
    ref = lambda x: upfirdn2d_np(x, np.ones([1, 1]) if f is None else f, up, down, pad,
                                 gain=2.0, flip=flip)
    return x, f, kw, ref


def _op(f, kw, traced):
    if traced and f is not None:
        return lambda x: jax.jit(lambda x, f: ops.upfirdn2d(x, f, **kw))(x, jnp.asarray(f))
    return lambda x: ops.upfirdn2d(x, f, **kw)


@pytest.mark.parametrize("traced", [False, True])
@pytest.mark.parametrize("i", range(len(GRID)))
def test_polyphase_grid_matches_scipy(i, traced):
    x, f, kw, ref = _grid_case(i)
    np.testing.assert_allclose(_op(f, kw, traced)(x), ref(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("traced", [False, True])
@pytest.mark.parametrize("i", [0, 2, 3, 5, 6])
def test_polyphase_gradient_is_the_reference_adjoint(i, traced):
    """d sum(op(x) * r) / dx equals the adjoint of the SciPy reference, built column by column."""
    x, f, kw, ref = _grid_case(i)
    r = np.random.default_rng(i).standard_normal(ref(x).shape)
    want = np.array([np.sum(ref(e.reshape(x.shape)) * r) for e in np.eye(x.size)])
    got = jax.grad(lambda x: jnp.sum(_op(f, kw, traced)(x) * r))(jnp.asarray(x))
    np.testing.assert_allclose(got, want.reshape(x.shape), rtol=1e-4, atol=1e-5)


def _depthwise_upfirdn2d(x, f, up, down, pad, gain):
    """The pre-#20 formulation (zero insertion + depthwise conv), for second-order checks."""
    x0, x1, y0, y1 = pad
    x = jax.lax.pad(x, 0.0, [(0, 0, 0), (y0, y1 + up - 1, up - 1), (x0, x1 + up - 1, up - 1),
                             (0, 0, 0)])
    f = jnp.flip(jnp.asarray(np.outer(f, f) if f.ndim == 1 else f) * gain, axis=(0, 1))
    k = jnp.broadcast_to(f[:, :, None, None], f.shape + (1, x.shape[-1]))
    return jax.lax.conv_general_dilated(x, k, (down, down), "VALID",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        feature_group_count=x.shape[-1])


@pytest.mark.parametrize("up,down,pad", [(2, 1, (2, 1, 2, 1)), (1, 2, (1, 1, 1, 1)),
                                         (3, 2, (-1, 2, 0, 3))])
def test_second_order_gradient_matches_depthwise_formulation(up, down, pad):
    """R1-style grad of a gradient norm through the op (custom backward, differentiated again)."""
    x = jax.random.normal(jax.random.key(1), [1, 5, 6, 2])
    f = ops.setup_filter([1, 3, 3, 1])
    r = jax.random.normal(jax.random.key(2), _depthwise_upfirdn2d(x, f, up, down, pad, 1).shape)

    def penalty(fir, x):
        g = jax.grad(lambda x: jnp.sum(jnp.tanh(fir(x)) * r))(x)
        return jnp.sum(jnp.square(g))
    new = lambda x: ops.upfirdn2d(x, f, up=up, down=down, padding=list(pad), gain=1.5)
    old = lambda x: _depthwise_upfirdn2d(x, f, up, down, pad, 1.5)
    np.testing.assert_allclose(jax.jit(jax.grad(lambda x: penalty(new, x)))(x),
                               jax.jit(jax.grad(lambda x: penalty(old, x)))(x),
                               rtol=1e-4, atol=1e-5)


def test_low_precision_input_keeps_dtype():
    x = jnp.asarray(np.random.default_rng(3).standard_normal([1, 6, 6, 2]), jnp.bfloat16)
    f = ops.setup_filter([1, 3, 3, 1])
    y = ops.upsample2d(x, f)
    assert y.dtype == jnp.bfloat16
    want = ops.upsample2d(x.astype(jnp.float32), f)
    np.testing.assert_allclose(y.astype(jnp.float32), want, rtol=2e-2, atol=2e-2)


def test_filter_as_list():
    x = np.random.default_rng(4).standard_normal([1, 5, 5, 1]).astype(np.float32)
    np.testing.assert_allclose(ops.upfirdn2d(x, [1.0, 2.0, 1.0], up=2, padding=1),
                               ops.upfirdn2d(x, np.array([1.0, 2.0, 1.0]), up=2, padding=1))
