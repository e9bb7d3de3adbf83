"""Golden-harness runners for the op-level cases (`op_*`): official NCHW/OIHW in, gan_zoo NHWC ops.

Each runner maps a case's tensors to gan_zoo's layouts, runs the op, takes the gradient of
sum(out * R) with the stored cotangent R, and returns arrays keyed like the case's .npz.
"""

import jax
import jax.numpy as jnp
import numpy as np

from gan_zoo import ops

# Layout adapters: official -> gan_zoo and back.
LAYOUTS = {
    "image": (lambda a: a.transpose(0, 2, 3, 1), lambda a: a.transpose(0, 3, 1, 2)),  # NCHW<->NHWC
    "oihw": (lambda a: a.transpose(2, 3, 1, 0), lambda a: a.transpose(3, 2, 0, 1)),  # OIHW<->HWIO
    None: (lambda a: a, lambda a: a),
}


def differentiate(case, fn, inputs: dict, layouts: dict, out_layout="image") -> dict:
    """Runs fn(**inputs) and the vjp w.r.t. every input with a stored grad/<name>.

    inputs: official-layout arrays (None = absent); layouts: name -> LAYOUTS key.
    Returns {'output/out': ..., 'grad/<name>': ...} in the official layouts.
    """
    to = {k: LAYOUTS[layouts.get(k)][0] for k in inputs}
    back = {k: LAYOUTS[layouts.get(k)][1] for k in inputs}
    conv = {k: None if v is None else jnp.asarray(to[k](np.asarray(v))) for k, v in inputs.items()}
    grad_names = sorted(case.prefixed("grad"))
    diff = {k: conv[k] for k in grad_names}
    const = {k: v for k, v in conv.items() if k not in diff}
    out, vjp = jax.vjp(lambda d: fn(**const, **d), diff)
    result = {"output/out": np.asarray(LAYOUTS[out_layout][1](out))}
    if grad_names:
        r = jnp.asarray(LAYOUTS[out_layout][0](case.arrays["cotangent/R"]))
        (grads,) = vjp(r.astype(out.dtype))
        result.update({f"grad/{k}": np.asarray(back[k](g)) for k, g in grads.items()})
    return result


def _inputs(case, *names):
    got = case.prefixed("input")
    return {n: got.get(n) for n in names}


def run_bias_act(case, impl):
    a = case.meta["args"]
    fn = lambda x, b: ops.bias_act(x, b, dim=a.get("dim", 1), act=a.get("act", "linear"),
                                   alpha=a.get("alpha"), gain=a.get("gain"), clamp=a.get("clamp"),
                                   impl=impl)
    return differentiate(case, fn, _inputs(case, "x", "b"), {}, out_layout=None)


def run_upfirdn2d(case, impl):
    a = dict(case.meta["args"])
    a.pop("impl", None)
    name = case.meta["function"].split(" ")[0].rsplit(".", 1)[1]
    op = getattr(ops, name)  # upfirdn2d, upsample2d, downsample2d or filter2d
    fn = lambda x, f: op(x, None if f is None else jnp.asarray(f), **a, impl=impl)
    return differentiate(case, fn, _inputs(case, "x", "f"), {"x": "image"})


def run_conv2d_resample(case, impl):
    a = case.meta["args"]
    fn = lambda x, w, f: ops.conv2d_resample(x, w, f, impl=impl, **a)
    return differentiate(case, fn, _inputs(case, "x", "w", "f"), {"x": "image", "w": "oihw"})


def run_filtered_lrelu(case, impl):
    a = dict(case.meta["args"])
    a.pop("impl", None)
    fn = lambda x, fu, fd, b: ops.filtered_lrelu(x, fu, fd, b, impl=impl, **a)
    return differentiate(case, fn, _inputs(case, "x", "fu", "fd", "b"), {"x": "image"})


def run_modconv2(case, impl):
    a = case.meta["args"]
    fn = lambda x, weight, styles, noise, resample_filter: ops.modulated_conv2d(
        x, weight, styles, noise=noise, resample_filter=resample_filter, impl=impl, **a)
    inputs = _inputs(case, "x", "weight", "styles", "noise", "resample_filter")
    return differentiate(case, fn, inputs, {"x": "image", "weight": "oihw", "noise": "image"})


def run_modconv3(case, impl):
    a = case.meta["args"]
    fn = lambda x, w, s, input_gain: ops.modulated_conv2d_sg3(x, w, s, input_gain=input_gain, **a)
    inputs = _inputs(case, "x", "w", "s", "input_gain")
    return differentiate(case, fn, inputs, {"x": "image", "w": "oihw"})


def run_design_lowpass(case, impl):
    f = ops.design_lowpass_filter(**case.meta["args"])
    return {"output/out": np.ones([1], np.float32) if f is None else f}


def run_mbstd(case, impl):
    a = case.meta["args"]
    fn = lambda x: ops.minibatch_std(x, group_size=a.get("group_size"),
                                     num_channels=a.get("num_channels", 1))
    return differentiate(case, fn, _inputs(case, "x"), {"x": "image"})


def run_sg3_input(case, impl):
    """SynthesisInput: the affine is an equalized-lr FC (weight gain 1/sqrt(w_dim), bias gain 1)."""
    a, p, b = case.meta["args"], case.prefixed("param"), case.prefixed("buffer")
    aff_w, aff_b = jnp.asarray(p["affine.weight"]), jnp.asarray(p["affine.bias"])

    def fn(w):
        t = w @ (aff_w * (1 / np.sqrt(w.shape[1]))).T + aff_b
        return ops.fourier_features(t, jnp.asarray(b["freqs"]), jnp.asarray(b["phases"]),
                                    jnp.asarray(b["transform"]), jnp.asarray(p["weight"]),
                                    size=a["size"], sampling_rate=a["sampling_rate"],
                                    bandwidth=a["bandwidth"])

    return differentiate(case, fn, _inputs(case, "w"), {})
