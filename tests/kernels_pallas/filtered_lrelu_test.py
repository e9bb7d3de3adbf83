"""Pallas filtered_lrelu == gan_zoo.ops.filtered_lrelu (forward, grads of x and b), SG3-T layers.

Geometries are those of the StyleGAN3-T generator (`net_stylegan3_T_G_res32_uncond` golden, layer
table): real filter sizes and paddings, tiny batch and channel counts.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_zoo import ops
from kernels_pallas import filtered_lrelu as kernel
from tests.kernels_pallas._util import KernelTestBase, check_fwd_grad, rand

SQRT2 = 2**0.5
KAISER12 = ops.design_lowpass_filter(12, cutoff=2.0, width=12.0, fs=32)
KAISER24 = ops.design_lowpass_filter(24, cutoff=4.0, width=8.0, fs=64)

SG3_LAYERS = {  # name: (in size, fu, fd, up, down, padding, gain, slope, clamp)
    "up2_down2": (16, KAISER12, KAISER12, 2, 2, [9, 8, 9, 8], SQRT2, 0.2, 256.0),
    "up4_down2": (16, KAISER24, KAISER12, 4, 2, [-6, -9, -6, -9], SQRT2, 0.2, 256.0),
    "critical_crop": (28, KAISER12, KAISER12, 2, 2, [-11, -12, -11, -12], SQRT2, 0.2, 256.0),
    "torgb": (8, None, None, 1, 1, 0, 1.0, 1.0, 256.0),
}


class TestFilteredLrelu(KernelTestBase):

    def _check(self, size, fu, fd, up, down, padding, gain, slope, clamp, channels=3, batch=1,
               blocks=None, bwd_impl="pallas", flip_filter=False):
        rng = np.random.default_rng(0)
        x = rand(rng, (batch, size, size + 1, channels))
        b = rand(rng, (channels,))
        kw = dict(up=up, down=down, padding=padding, gain=gain, slope=slope, clamp=clamp,
                  flip_filter=flip_filter)
        bs = kernel.BlockSizes(*blocks, 128) if blocks else None
        ker = lambda x, b: kernel.filtered_lrelu(x, fu, fd, b, block_sizes=bs,
                                                 interpret=self.interpret, bwd_impl=bwd_impl, **kw)
        ref = lambda x, b: ops.filtered_lrelu(x, fu, fd, b, impl="xla", **kw)
        check_fwd_grad(ker, ref, (x, b), (0, 1), rng, param_argnums=(1,))

    @pytest.mark.parametrize("layer", sorted(SG3_LAYERS))
    def test_stylegan3_t_layer(self, layer):
        self._check(*SG3_LAYERS[layer])

    def test_random_2d_filters_tiles_and_xla_backward(self):
        rng = np.random.default_rng(3)
        fu, fd = rand(rng, (4, 4), low=0.1), rand(rng, (3, 5), low=0.1)
        self._check(11, fu, fd, 2, 3, [1, 2, -1, 3], 1.3, 0.1, 0.3, channels=2, batch=2,
                    blocks=(2, 3), bwd_impl="xla", flip_filter=True)

    def test_upsampled_intermediate_stays_on_chip(self):
        # One pallas_call, and no array in the forward jaxpr is as large as the up^2 intermediate.
        x = jnp.zeros((1, 16, 16, 4))
        fn = lambda x: kernel.filtered_lrelu(x, KAISER12, KAISER12, None, up=2, down=2,
                                             padding=[9, 8, 9, 8], interpret=self.interpret)
        jaxpr = jax.make_jaxpr(fn)(x)
        assert str(jaxpr).count("pallas_call") == 1
        outer = [v.aval.size for eqn in jaxpr.jaxpr.eqns for v in eqn.outvars]
        assert max(outer) < 4 * 16 * 16 * 4 * 1.6, max(outer)

    def test_bad_bwd_impl(self):
        with pytest.raises(ValueError, match="bwd_impl"):
            kernel.filtered_lrelu(jnp.zeros((1, 4, 4, 1)), bwd_impl="cuda")


class TestFilteredLreluInterpret(TestFilteredLrelu):
    interpret = True
