"""Fused bias + activation + gain + clamp (StyleGAN2/3 `bias_act`, reference semantics).

y = clamp(act(x + b, alpha) * gain, -clamp, clamp), with the bias broadcast along axis `dim`.
"""

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from gan_zoo.ops import dispatch


@dataclasses.dataclass(frozen=True)
class ActivationSpec:
    func: Callable  # f(x, alpha) -> y
    def_alpha: float  # default alpha (the leaky-ReLU slope)
    def_gain: float  # default gain (sqrt(2) keeps the 2nd moment of ReLU-like activations)


def _relu(x, alpha):
    # torch.relu: gradient 0 at x == 0 (jnp.maximum would give 0.5).
    return jnp.where(x > 0, x, jnp.zeros_like(x))


def _lrelu(x, alpha):
    # torch leaky_relu: x if x > 0 else alpha * x (slope alpha at 0).
    return jnp.where(x > 0, x, x * alpha)


def _softplus(x, alpha):
    # torch softplus (beta=1, threshold=20): linear above 20.
    return jnp.where(x > 20, x, jnp.log1p(jnp.exp(jnp.minimum(x, 20))))


ACTIVATIONS = {
    "linear": ActivationSpec(lambda x, alpha: x, 0.0, 1.0),
    "relu": ActivationSpec(_relu, 0.0, float(np.sqrt(2))),
    "lrelu": ActivationSpec(_lrelu, 0.2, float(np.sqrt(2))),
    "tanh": ActivationSpec(lambda x, alpha: jnp.tanh(x), 0.0, 1.0),
    "sigmoid": ActivationSpec(lambda x, alpha: jax.nn.sigmoid(x), 0.0, 1.0),
    "elu": ActivationSpec(lambda x, alpha: jax.nn.elu(x), 0.0, 1.0),
    "selu": ActivationSpec(lambda x, alpha: jax.nn.selu(x), 0.0, 1.0),
    "softplus": ActivationSpec(_softplus, 0.0, 1.0),
    "swish": ActivationSpec(lambda x, alpha: jax.nn.sigmoid(x) * x, 0.0, float(np.sqrt(2))),
}


def activation_defaults(act: str, alpha=None, gain=None) -> tuple[float, float]:
    """(alpha, gain) after the per-activation defaults."""
    spec = _spec(act)
    alpha = float(spec.def_alpha if alpha is None else alpha)
    gain = float(spec.def_gain if gain is None else gain)
    return alpha, gain


def _spec(act: str) -> ActivationSpec:
    if act not in ACTIVATIONS:
        raise ValueError(f"bias_act: unknown act={act!r}; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[act]


def bias_act(x, b=None, dim=-1, act="linear", alpha=None, gain=None, clamp=None, impl="auto"):
    """Add bias, activate, scale, clamp.

    Steps: 1. x + b, with b of shape [x.shape[dim]] broadcast along axis `dim` (NHWC: -1 = C);
    2. act(x, alpha); 3. multiply by gain (per-activation default if None); 4. clamp to
    [-clamp, clamp] if clamp is not None.
    Args:
      x: any shape. b: None or [x.shape[dim]]. act: one of ACTIVATIONS.
    Returns: same shape and dtype as x.
    """
    if dispatch.resolve_impl(impl, "bias_act") == "pallas":
        return dispatch.kernel("bias_act")(x, b, dim, act, alpha, gain, clamp)
    spec = _spec(act)
    alpha, gain = activation_defaults(act, alpha, gain)
    if b is not None:
        dim = dim % x.ndim if x.ndim else 0
        if b.ndim != 1 or b.shape[0] != x.shape[dim]:
            raise ValueError(f"bias_act: b must have shape [{x.shape[dim]}] (x.shape[{dim}]), "
                             f"got {tuple(b.shape)}")
        # Broadcast, then cast: the bias gradient (the transposed broadcast, a sum over N, H, W)
        # accumulates in b's float32, not in a reduced activation dtype.
        b = jnp.broadcast_to(b.reshape([-1 if i == dim else 1 for i in range(x.ndim)]), x.shape)
        x = x + b.astype(x.dtype)
    x = spec.func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = clamp_act(x, clamp)
    return x


def clamp_act(x, clamp: float):
    """torch.clamp(x, -clamp, clamp): gradient 1 inside [-clamp, clamp] (ends included), else 0."""
    c = jnp.asarray(clamp, x.dtype)
    return jnp.where(x > c, c, jnp.where(x < -c, -c, x))
