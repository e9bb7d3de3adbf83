"""EfficientNet-lite0 weights: timm state dict -> `gan_zoo.feature_nets.efficientnet` variables.

The real weights are timm's `tf_efficientnet_lite0.in1k` (hub repo of that name under `timm/`,
file `model.safetensors`). Accepted files, read without torch: `.safetensors` (safetensors' numpy
API) or `.npz` with the state-dict names as keys; golden-format files (`param/...`, `buffer/...`
keys, e.g. `feat_effnet_lite0.npz`) too. A full checkpoint (with conv_head, bn2, classifier) loads
into the features_only net: those names are then ignored, as timm's features_only model drops them.

Name map: `blocks.i.j.conv_pw.weight` [O, I, 1, 1] -> params blocks_i_j/conv_pw/kernel [1, 1, I, O];
depthwise `conv_dw.weight` [C, 1, k, k] -> kernel [k, k, 1, C]; `bnK.weight`/`bias` -> params
bnK/scale, bias; `bnK.running_mean`/`running_var` -> batch_stats bnK/mean, var; `classifier.weight`
[1000, 1280] -> classifier/kernel [1280, 1000].
"""

import flax
import jax
import numpy as np

from gan_zoo.convert import vit as vit_convert
from gan_zoo.feature_nets import efficientnet

_LEAF_NAMES = {("params", "kernel"): "weight", ("params", "scale"): "weight",
               ("params", "bias"): "bias", ("batch_stats", "mean"): "running_mean",
               ("batch_stats", "var"): "running_var"}
_IGNORED_SUFFIXES = (".num_batches_tracked",)
_CLASSIFIER_PREFIXES = ("conv_head.", "bn2.", "classifier.")  # not in features_only


def read_state_dict(path) -> dict:
    """{name: numpy array} from a `.safetensors` or `.npz` state dict (golden format included)."""
    return vit_convert.read_state_dict(path, "EfficientNet-lite0 weights")


def torch_name(flax_key: tuple) -> str:
    """('params', 'blocks_1_0', 'conv_pw', 'kernel') -> 'blocks.1.0.conv_pw.weight'."""
    collection, *path, leaf = flax_key
    path = [p.replace("_", ".") if p.startswith("blocks_") else p for p in path]
    return ".".join(path + [_LEAF_NAMES[(collection, leaf)]])


def _to_flax(name: str, value: np.ndarray) -> np.ndarray:
    if value.ndim == 4:
        return value.transpose(2, 3, 1, 0)  # OIHW -> HWIO (depthwise: [C, 1, k, k] -> [k, k, 1, C])
    if name == "classifier.weight":
        return value.T  # [1000, 1280] -> [1280, 1000]
    return value


def convert_state_dict(state_dict: dict, source: str = "state dict",
                       num_classes: int | None = None) -> dict:
    """timm-named arrays -> {'params', 'batch_stats'} of EfficientNetLite0(num_classes); raises
    ValueError naming `source` and the first missing, unexpected or mis-shaped name."""
    template = jax.eval_shape(lambda: efficientnet.init_variables(num_classes=num_classes))
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(template))
    wanted = {torch_name(k): (k, v.shape) for k, v in flat.items()}
    given = {k: v for k, v in state_dict.items() if not k.endswith(_IGNORED_SUFFIXES)}
    if num_classes is None:  # features_only ignores the classifier part of a full checkpoint
        given = {k: v for k, v in given.items() if not k.startswith(_CLASSIFIER_PREFIXES)}
    missing, unexpected = sorted(set(wanted) - set(given)), sorted(set(given) - set(wanted))
    if missing or unexpected:
        raise ValueError(f"EfficientNet-lite0 weights ({source}): {len(missing)} missing names "
                         f"{missing[:3]}, {len(unexpected)} unexpected names {unexpected[:3]}")
    out = {}
    for name, (key, shape) in sorted(wanted.items()):
        value = _to_flax(name, np.asarray(given[name], np.float32))
        if value.shape != tuple(shape):
            raise ValueError(f"EfficientNet-lite0 weights ({source}): {name} has shape "
                             f"{np.shape(given[name])}, expected the torch layout of {shape}")
        out[key] = value
    return flax.traverse_util.unflatten_dict(out)


def load_efficientnet(path, num_classes: int | None = None) -> dict:
    """Variables of `EfficientNetLite0(num_classes)` from a local .safetensors / .npz file."""
    return convert_state_dict(read_state_dict(path), source=str(path), num_classes=num_classes)


def to_state_dict(variables) -> dict:
    """`EfficientNetLite0` variables -> timm-named numpy arrays (inverse of convert_state_dict)."""
    sd = {}
    for key, v in flax.traverse_util.flatten_dict(flax.core.unfreeze(variables)).items():
        name, v = torch_name(key), np.asarray(v, np.float32)
        v = v.transpose(3, 2, 0, 1) if v.ndim == 4 else (v.T if v.ndim == 2 else v)
        sd[name] = np.ascontiguousarray(v)  # safetensors writes the raw buffer
    return sd


# ----------------------------------------------------------------------------------------------
# Golden harness.

def golden_effnet(case, impl: str = "xla") -> dict:
    """Runner for timm EfficientNetFeatures cases: the four taps, the stored intermediates and the
    input gradient of sum(tap * cotangent)."""
    del impl  # no custom ops in this network
    sd = {**case.prefixed("param"), **case.prefixed("buffer")}
    variables = convert_state_dict(sd, source=case.name)
    x = np.asarray(case.arrays["input/x"]).transpose(0, 2, 3, 1)  # NCHW -> NHWC
    net = efficientnet.EfficientNetLite0()
    tap_names = [f"tap_blocks{i}" for i in efficientnet.TAP_STAGES]
    cots = [case.arrays[f"cotangent/R_{n}"].transpose(0, 2, 3, 1) for n in tap_names]

    def taps_and_aux(x):
        return net.apply(variables, x)

    (taps, aux), vjp = jax.vjp(taps_and_aux, x)
    zero_aux = jax.tree.map(np.zeros_like, aux)
    (grad_x,) = vjp((tuple(cots), zero_aux))
    nchw = lambda a: np.asarray(a).transpose(0, 3, 1, 2)
    out = {f"output/{n}": nchw(t) for n, t in zip(tap_names, taps)}
    for key in case.prefixed("intermediate"):  # e.g. 'blocks.3', batch element 0
        out[f"intermediate/{key}"] = nchw(aux[key][:1])
    out["grad/x"] = nchw(grad_x)
    return out
