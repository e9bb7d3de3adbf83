"""Pallas upfirdn2d == gan_zoo.ops.upfirdn2d (forward, gradient), incl. StyleGAN2/3 geometries."""

import functools

import jax
import numpy as np
import pytest

from gan_zoo import ops
from kernels_pallas import upfirdn2d as kernel
from tests.kernels_pallas._util import KernelTestBase, check_fwd_grad, rand

RANDOM_CASES = [  # (x shape NHWC, filter shape or None, up, down, padding, flip, gain, blocks)
    ((1, 6, 5, 2), (3, 3), [1, 2], [2, 1], [1, 1, 2, 1], False, 1.0, None),
    ((2, 9, 11, 3), (7,), 3, 2, [-2, 3, 4, -1], True, 2.0, (3, 2)),  # several tiles + halos
    ((1, 20, 18, 4), (4, 4), 1, 3, [2, 2, 1, 0], False, 1.0, (2, 3)),
    ((2, 5, 6, 2), None, 2, 1, [0, -1, 1, 0], False, 1.0, None),
]


class TestUpFirDn2d(KernelTestBase):

    def _check(self, x, f, blocks=None, **kw):
        bs = kernel.BlockSizes(*blocks, 128) if blocks else None
        ker = lambda x: kernel.upfirdn2d(x, f, block_sizes=bs, interpret=self.interpret, **kw)
        ref = lambda x: ops.upfirdn2d(x, f, impl="xla", **kw)
        check_fwd_grad(ker, ref, (x,), (0,), np.random.default_rng(1))

    @pytest.mark.parametrize("shape,fshape,up,down,pad,flip,gain,blocks", RANDOM_CASES)
    def test_random(self, shape, fshape, up, down, pad, flip, gain, blocks):
        rng = np.random.default_rng(0)
        f = None if fshape is None else rand(rng, fshape, low=0.1)
        self._check(rand(rng, shape), f, blocks, up=up, down=down, padding=pad,
                    flip_filter=flip, gain=gain)

    def test_stylegan2_skip_upsample(self):
        # Config F skip path: upsample2d of the RGB image with the [1,3,3,1] filter (4x4, 2-D).
        f = ops.setup_filter([1, 3, 3, 1])
        x = rand(np.random.default_rng(0), (2, 8, 8, 3))
        ker = lambda x: ops.upsample2d(x, f, impl="pallas")  # Through the impl dispatch.
        ref = lambda x: ops.upsample2d(x, f, impl="xla")
        check_fwd_grad(ker, ref, (x,), (0,), np.random.default_rng(1))

    def test_stylegan2_discriminator_downsample(self):
        f = ops.setup_filter([1, 3, 3, 1])
        self._check(rand(np.random.default_rng(0), (2, 8, 8, 4)), f, down=2,
                    padding=[1, 1, 1, 1])

    def test_stylegan3_kaiser_upsample(self):
        # A 12-tap separable Kaiser filter, up=2, the padding of a StyleGAN3-T layer's up-FIR.
        f = ops.design_lowpass_filter(12, cutoff=2.0, width=12.0, fs=32)
        self._check(rand(np.random.default_rng(0), (1, 12, 12, 3)), f, up=2, padding=[9, 8, 9, 8],
                    gain=4, blocks=(8, 8))

    def test_under_jit_is_one_pallas_call(self):
        x = rand(np.random.default_rng(0), (1, 8, 8, 2))
        fn = functools.partial(kernel.upfirdn2d, up=2, padding=[2, 1], interpret=self.interpret)
        jaxpr = str(jax.make_jaxpr(fn)(x, ops.setup_filter([1, 3, 3, 1])))
        assert jaxpr.count("pallas_call") == 1

    def test_bad_block_sizes(self):
        with pytest.raises(ValueError, match="block_w"):
            kernel.BlockSizes(block_w=0)


class TestUpFirDn2dInterpret(TestUpFirDn2d):
    interpret = True
