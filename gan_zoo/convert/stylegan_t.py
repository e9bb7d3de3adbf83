"""Official StyleGAN-T (`networks.generator.Generator`) state dicts -> Flax variables, and the
golden-harness runner. Layouts as in `gan_zoo.convert.stylegan2` (OIHW -> HWIO, dense [O, I] ->
[I, O]); names differ in three places: `convs1.<j>` -> `convs1_<j>`, a residual layer's conv
variables sit under `convs1_<j>/conv` (its `norm`, `gamma` stay on the layer), GroupNorm
`norm.weight` -> `norm/scale`; `gamma` [1, C, 1, 1] -> [C]. The CLIP text encoder is not part of
this state dict (text embeddings are inputs).

    G = generator_from_kwargs(init_kwargs)
    variables = convert_state_dict(state_dict, G)
"""

import copy

import flax
import jax
import jax.numpy as jnp
import numpy as np

from gan_zoo import ops
from gan_zoo.convert.stylegan2 import (
    _IGNORED,
    _pop_known,
    _to_flax,
    run_generator_case,
    split_golden_state,
)
from gan_zoo.models import stylegan_t
from gan_zoo.models.stylegan2_layers import DEFAULT_FILTER

_SYNTH = ("channel_base", "channel_max", "num_res_blocks", "architecture", "conv_clamp")
_IGNORED_T = _IGNORED + ("num_fp16_res", "fused_modconv_default", "train_mode")
CLIP_STUB_DIM = 16  # c_dim when the golden's parameter-free CLIP stand-in replaced CLIP


def generator_from_kwargs(kwargs: dict, c_dim: int = 768, impl: str = "auto"):
    """stylegan_t.Generator from the official Generator(**kwargs) (c_dim: text embedding size,
    768 for CLIP ViT-L/14; the official code takes it from its CLIP model)."""
    kwargs = dict(kwargs)
    synth = _pop_known(kwargs.pop("synthesis_kwargs", {}) or {}, {k: k for k in _SYNTH},
                       _IGNORED_T, "stylegan_t Generator synthesis_kwargs")
    conditional = kwargs.pop("conditional", True)
    top = _pop_known(kwargs, {k: k for k in ("z_dim", "img_resolution", "img_channels")},
                     _IGNORED_T, "stylegan_t Generator")
    return stylegan_t.Generator(**top, **synth, c_dim=c_dim if conditional else 0, impl=impl)


def _flax_key(name: str, value) -> tuple:
    """(collection, path) and the value in gan_zoo layout of one torch tensor."""
    parts = name.split(".")
    if len(parts) > 2 and parts[0] == "synthesis" and parts[2] == "convs1":
        j = int(parts[3])
        parts = parts[:2] + [f"convs1_{j}"] + parts[4:]
        if j % 2 and parts[3] not in ("norm", "gamma"):
            parts = parts[:3] + ["conv"] + parts[3:]
    if parts[-1] == "x_avg":
        return ("ema_stats",) + tuple(parts), np.asarray(value, np.float32)
    if parts[-2:-1] == ["norm"]:
        leaf = {"weight": "scale", "bias": "bias"}[parts[-1]]
        return ("params",) + tuple(parts[:-1]) + (leaf,), np.asarray(value, np.float32)
    if parts[-1] == "gamma":
        return ("params",) + tuple(parts), np.asarray(value, np.float32).reshape(-1)
    coll, path, v = _to_flax(".".join(parts), value)
    return (coll,) + path, v


def convert_state_dict(state: dict, G: stylegan_t.Generator):
    """Official state dict {torch name: array} -> Flax variables of G (ValueError listing every
    unknown, missing or misshapen name; `resample_filter` buffers must equal [1,3,3,1])."""
    z = jnp.zeros([1, G.z_dim])
    c = jnp.zeros([1, G.c_dim]) if G.c_dim else None
    target = jax.eval_shape(lambda: G.init(jax.random.PRNGKey(0), z, c))
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(target))
    f = np.asarray(ops.setup_filter(DEFAULT_FILTER))
    out, unknown, bad = {}, [], []
    for name, value in state.items():
        if name.endswith("resample_filter"):
            if np.shape(value) != f.shape or not np.allclose(value, f, atol=1e-6):
                bad.append(f"{name}: not the [1,3,3,1] filter")
            continue
        key, v = _flax_key(name, value)
        if key not in flat:
            unknown.append(name)
        elif tuple(flat[key].shape) != v.shape:
            bad.append(f"{name}: {v.shape} vs {tuple(flat[key].shape)}")
        else:
            out[key] = jnp.asarray(v)
    missing = ["/".join(k) for k in flat if k not in out]
    problems = [(unknown, "torch names without a Flax variable"), (bad, "bad shapes / filters"),
                (missing, "Flax variables missing from the state dict")]
    msg = "; ".join(f"{what}: {sorted(n)}" for n, what in problems if n)
    if msg:
        raise ValueError(f"stylegan_t.convert_state_dict: {msg}")
    return flax.traverse_util.unflatten_dict(out)


def golden_generator(case, impl="xla") -> dict:
    """Runner for `networks.generator.Generator` cases: the StyleGAN2 key grammar plus
    output/ws_mapping_train and buffer_after_train/mapping.x_avg (train-mode mapping =
    update_emas=True)."""
    G = generator_from_kwargs(case.meta["constructor_kwargs"], c_dim=case.meta.get(
        "c_dim", CLIP_STUB_DIM), impl=impl)
    variables = convert_state_dict(split_golden_state(case), G)
    train_keys = ("output/ws_mapping_train", "buffer_after_train/mapping.x_avg")
    rest = copy.copy(case)  # the StyleGAN2 grammar reads `ws_mapping_train` as a psi
    rest.arrays = {k: v for k, v in case.arrays.items() if k not in train_keys}
    res = run_generator_case(rest, G, variables)
    z = jnp.asarray(case.arrays["input/z"])
    c = jnp.asarray(case.arrays["input/c"]) if G.c_dim else None
    ws, new = G.apply(variables, z, c, update_emas=True, mutable=("ema_stats",), method="map")
    res["output/ws_mapping_train"] = np.asarray(ws)
    res["buffer_after_train/mapping.x_avg"] = np.asarray(new["ema_stats"]["mapping"]["x_avg"])
    return res

