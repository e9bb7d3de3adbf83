"""Pallas modulated_conv2d == gan_zoo.ops.modulated_conv2d (forward; grads of x, weight, styles).

Geometries of StyleGAN2 config F (3x3 up=2 with the [1,3,3,1] filter, 3x3 with noise, 1x1 ToRGB)
at tiny batch, channel and spatial sizes.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_zoo import ops
from kernels_pallas import modulated_conv2d as kernel
from tests.kernels_pallas._util import KernelTestBase, check_fwd_grad, rand

F4 = ops.setup_filter([1, 3, 3, 1])  # [4, 4]

LAYERS = {  # name: (x shape, weight shape, kwargs); SG2 uses flip_weight = (up == 1).
    "conv3x3_up2": ((2, 6, 6, 4), (3, 3, 4, 6),
                    dict(up=2, padding=1, resample_filter=F4, flip_weight=False)),
    "conv3x3_noise": ((2, 8, 8, 4), (3, 3, 4, 6), dict(padding=1, noise=True)),
    "torgb_1x1": ((2, 8, 8, 4), (1, 1, 4, 3), dict(demodulate=False, fused_modconv=False)),
    "down2_tiles": ((1, 12, 10, 3), (3, 3, 3, 5),
                    dict(down=2, padding=1, resample_filter=F4, blocks=(2, 8))),
    "asym_pad_tiles": ((1, 9, 7, 3), (3, 2, 3, 5), dict(padding=[1, 0, -1, 2], blocks=(2, 8))),
}


class TestModulatedConv2d(KernelTestBase):

    @pytest.mark.parametrize("layer", sorted(LAYERS))
    def test_layer(self, layer):
        xshape, wshape, kw = LAYERS[layer]
        kw = dict(kw)
        rng = np.random.default_rng(0)
        x, w, s = rand(rng, xshape), rand(rng, wshape), rand(rng, (xshape[0], wshape[2]))
        blocks = kw.pop("blocks", None)
        bs = kernel.BlockSizes(*blocks, 128) if blocks else None
        if kw.pop("noise", False):
            out = ops.modulated_conv2d(x, w, s, impl="xla", **kw)
            kw["noise"] = rand(rng, out.shape[:3] + (1,))
        ker = lambda x, w, s: kernel.modulated_conv2d(x, w, s, block_sizes=bs,
                                                      interpret=self.interpret, **kw)
        ref = lambda x, w, s: ops.modulated_conv2d(x, w, s, impl="xla", **kw)
        check_fwd_grad(ker, ref, (x, w, s), (0, 1, 2), rng, param_argnums=(1, 2))

    def test_dispatch_and_no_per_sample_weights(self):
        # impl='pallas' reaches the kernel; no [N, kh, kw, I, O] array appears outside it.
        rng = np.random.default_rng(0)
        x, w, s = rand(rng, (2, 8, 8, 4)), rand(rng, (3, 3, 4, 6)), rand(rng, (2, 4))
        jaxpr = jax.make_jaxpr(lambda x, w, s: ops.modulated_conv2d(x, w, s, padding=1,
                                                                    impl="pallas"))(x, w, s)
        assert str(jaxpr).count("pallas_call") == 1
        shapes = [tuple(v.aval.shape) for eqn in jaxpr.jaxpr.eqns for v in eqn.outvars]
        assert (2, 3, 3, 4, 6) not in shapes

    def test_bad_styles_shape(self):
        with pytest.raises(ValueError, match="styles"):
            kernel.modulated_conv2d(jnp.zeros((2, 4, 4, 3)), jnp.zeros((3, 3, 3, 5)),
                                    jnp.zeros((2, 4)))


class TestModulatedConv2dInterpret(TestModulatedConv2d):
    interpret = True
