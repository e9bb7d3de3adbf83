"""bias_act for impl='pallas': the jnp reference, on purpose.

bias_act is elementwise (plus a broadcast bias), so XLA already fuses it into its neighbours (the
producing conv's epilogue, the next op's prologue) and reads/writes x exactly once. A standalone
Pallas kernel would cut those fusions and add an HBM round trip, so it cannot pay; in the hot
paths the bias/activation/clamp already live inside the fused kernels (filtered_lrelu). This module
exists so that impl='pallas' works end to end (the golden harness, models built with 'pallas').
"""

from gan_zoo.ops.bias_act import bias_act as _bias_act_xla


def bias_act(x, b=None, dim=-1, act="linear", alpha=None, gain=None, clamp=None):
    """Same arguments and result as `gan_zoo.ops.bias_act` (runs the reference, see above)."""
    return _bias_act_xla(x, b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp, impl="xla")
