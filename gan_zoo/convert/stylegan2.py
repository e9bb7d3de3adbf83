"""Official StyleGAN2 (NVlabs/stylegan3 `networks_stylegan2.py`) state dicts -> Flax variables, and
the golden-harness runners for `training.networks_stylegan2.Generator` / `Discriminator`.

    G = generator_from_kwargs(init_kwargs)                  # the pickle's G.init_kwargs
    variables = convert_state_dict(state_dict, G)           # {torch name: np.ndarray}

Flax names are the torch names split on '.', so the mapping is a rename plus a layout change:
conv weights OIHW -> HWIO, FC weights [out, in] -> [in, out], the const [C, H, W] -> [H, W, C].
Collections by leaf name: `w_avg` / `magnitude_ema` -> `ema_stats`; `noise_const`, `freqs`,
`phases`, `transform` -> `buffers`; everything else -> `params`. Filter buffers
(`resample_filter`, `up_filter`, `down_filter`) are design-time constants in gan_zoo: they are
checked against the re-derived filters, not loaded.
"""

from typing import Callable, Optional

import flax
import jax
import jax.numpy as jnp
import numpy as np

from gan_zoo import ops
from gan_zoo.models import stylegan2

EMA_LEAVES = ("w_avg", "magnitude_ema")
BUFFER_LEAVES = ("noise_const", "freqs", "phases", "transform")
FILTER_LEAVES = ("resample_filter", "up_filter", "down_filter")


# ----------------------------------------------------------------------------------------------
# Constructor kwargs.

def _pop_known(kwargs: dict, table: dict, ignore: tuple, where: str) -> dict:
    """Renames official kwargs by `table`; raises ValueError naming any unknown key."""
    out, unknown = {}, []
    for k, v in kwargs.items():
        if k in table:
            out[table[k]] = v
        elif k not in ignore:
            unknown.append(k)
    if unknown:
        raise ValueError(f"{where}: unsupported official kwargs {sorted(unknown)}")
    return out


_IGNORED = ("num_fp16_res", "channels_last", "fp16_channels_last", "use_fp16", "freeze_layers",
            "freeze_embed", "class_name")
_MAPPING = {"num_layers": "mapping_layers", "lr_multiplier": "mapping_lr_multiplier",
            "embed_features": "embed_features", "layer_features": "layer_features",
            "w_avg_beta": "w_avg_beta"}
_G_TOP = {"z_dim": "z_dim", "c_dim": "c_dim", "w_dim": "w_dim", "img_resolution": "img_resolution",
          "img_channels": "img_channels", "channel_base": "channel_base",
          "channel_max": "channel_max", "architecture": "architecture", "conv_clamp": "conv_clamp",
          "resample_filter": "resample_filter", "use_noise": "use_noise",
          "fused_modconv_default": "fused_modconv_default"}


def generator_from_kwargs(kwargs: dict, impl: str = "auto") -> stylegan2.Generator:
    """stylegan2.Generator from the official Generator(**kwargs) arguments."""
    kwargs = dict(kwargs)
    mapping = _pop_known(kwargs.pop("mapping_kwargs", {}) or {}, _MAPPING, _IGNORED,
                         "stylegan2 Generator mapping_kwargs")
    top = _pop_known(kwargs, _G_TOP, _IGNORED, "stylegan2 Generator")
    if top.get("fused_modconv_default") == "inference_only":  # fused except in training
        top["fused_modconv_default"] = "auto"  # the trainer passes its own choice
    if "resample_filter" in top:
        top["resample_filter"] = tuple(top["resample_filter"])
    return stylegan2.Generator(**top, **mapping, impl=impl)


_D_TOP = {"c_dim": "c_dim", "img_resolution": "img_resolution", "img_channels": "img_channels",
          "architecture": "architecture", "channel_base": "channel_base",
          "channel_max": "channel_max", "conv_clamp": "conv_clamp", "cmap_dim": "cmap_dim"}
_D_EPILOGUE = {"mbstd_group_size": "mbstd_group_size", "mbstd_num_channels": "mbstd_num_channels"}
_D_MAPPING = {"num_layers": "mapping_layers", "lr_multiplier": "mapping_lr_multiplier"}
_D_BLOCK = {"resample_filter": "resample_filter"}


def discriminator_from_kwargs(kwargs: dict, impl: str = "auto") -> stylegan2.Discriminator:
    """stylegan2.Discriminator from the official Discriminator(**kwargs) arguments."""
    kwargs = dict(kwargs)
    parts = [_pop_known(kwargs.pop(name, {}) or {}, table, _IGNORED, f"stylegan2 D {name}")
             for name, table in (("epilogue_kwargs", _D_EPILOGUE), ("mapping_kwargs", _D_MAPPING),
                                 ("block_kwargs", _D_BLOCK))]
    top = _pop_known(kwargs, _D_TOP, _IGNORED, "stylegan2 Discriminator")
    merged = {k: v for p in parts + [top] for k, v in p.items()}
    if "resample_filter" in merged:
        merged["resample_filter"] = tuple(merged["resample_filter"])
    return stylegan2.Discriminator(**merged, impl=impl)


# ----------------------------------------------------------------------------------------------
# State dicts.

def _to_flax(name: str, value: np.ndarray) -> tuple[str, tuple, np.ndarray]:
    """(collection, path, value in gan_zoo layout) of one torch tensor."""
    path = tuple(name.split("."))
    leaf = path[-1]
    coll = "ema_stats" if leaf in EMA_LEAVES else "buffers" if leaf in BUFFER_LEAVES else "params"
    v = np.asarray(value, np.float32)
    if leaf == "const" and v.ndim == 3:
        v = v.transpose(1, 2, 0)  # [C, H, W] -> [H, W, C]
    elif leaf == "weight" and v.ndim == 4:
        v = v.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    elif leaf == "weight" and v.ndim == 2:
        v = v.T  # [out, in] -> [in, out]
    return coll, path, v


def convert_state_dict(state: dict, model, init_args: Optional[tuple] = None,
                       design_filters: Optional[Callable[[str], Optional[np.ndarray]]] = None):
    """Official state dict {torch name: array} -> Flax variables of `model`.

    Every tensor must land on a variable of the same shape and every variable must be filled;
    otherwise a ValueError lists the mismatched names. `design_filters(name)` returns the
    re-derived filter for a filter buffer (None: the layer has no filter); loaded filters must
    match it. init_args: example inputs for model.init (default: from the model's fields).
    """
    target = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), *(
        init_args or _example_inputs(model))))
    flat_target = flax.traverse_util.flatten_dict(flax.core.unfreeze(target))
    out, unknown, bad_shape, bad_filter = {}, [], [], []
    for name, value in state.items():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in FILTER_LEAVES:
            want = (design_filters or _default_filter(model))(name)
            if want is None or np.shape(want) != np.shape(value) or not np.allclose(
                    want, value, rtol=1e-4, atol=1e-6):
                bad_filter.append(name)
            continue
        coll, path, v = _to_flax(name, value)
        key = (coll,) + path
        if key not in flat_target:
            unknown.append(name)
        elif tuple(flat_target[key].shape) != v.shape:
            bad_shape.append(f"{name}: {v.shape} vs {tuple(flat_target[key].shape)}")
        else:
            out[key] = jnp.asarray(v)
    missing = ["/".join(k) for k in flat_target if k not in out]
    problems = [(unknown, "torch names without a Flax variable"),
                (bad_shape, "shape mismatches (gan_zoo layout vs model)"),
                (missing, "Flax variables missing from the state dict"),
                (bad_filter, "filter buffers that differ from the re-derived design")]
    msg = "; ".join(f"{what}: {sorted(names)}" for names, what in problems if names)
    if msg:
        raise ValueError(f"convert_state_dict({type(model).__name__}): {msg}")
    return flax.traverse_util.unflatten_dict(out)


def export_state_dict(variables) -> dict:
    """Flax variables -> {torch name: np.ndarray} (inverse of convert_state_dict, without the
    design-time filter buffers)."""
    out = {}
    for coll in ("params", "ema_stats", "buffers"):
        flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables.get(coll, {})))
        for path, v in flat.items():
            v, leaf = np.asarray(v), path[-1]
            if leaf == "const" and v.ndim == 3:
                v = v.transpose(2, 0, 1)  # [H, W, C] -> [C, H, W]
            elif leaf == "weight" and v.ndim == 4:
                v = v.transpose(3, 2, 0, 1)  # HWIO -> OIHW
            elif leaf == "weight" and v.ndim == 2:
                v = v.T  # [in, out] -> [out, in]
            out[".".join(path)] = v
    return out


def _default_filter(model):
    f = ops.setup_filter(getattr(model, "resample_filter", stylegan2.DEFAULT_FILTER))
    return lambda name: f if name.endswith("resample_filter") else None


def _example_inputs(model) -> tuple:
    if isinstance(model, stylegan2.Discriminator):
        r, c = model.img_resolution, model.img_channels
        return (jnp.zeros([1, r, r, c]), jnp.zeros([1, model.c_dim]) if model.c_dim else None)
    z = jnp.zeros([1, model.z_dim])
    return (z, jnp.zeros([1, model.c_dim]) if model.c_dim else None)


def split_golden_state(case) -> dict:
    """The case's param/ and buffer/ arrays as one {torch name: array} state dict."""
    return {**case.prefixed("param"), **case.prefixed("buffer")}


# ----------------------------------------------------------------------------------------------
# Golden-harness runners (NCHW in and out, like the official code).

def _nchw(x):
    return np.asarray(jnp.transpose(x, (0, 3, 1, 2)))


def _nhwc(x):
    return jnp.asarray(np.asarray(x).transpose(0, 2, 3, 1))


def parse_psi(token: str) -> float:
    """'psi1' -> 1.0, 'psi05' -> 0.5, 'psi07' -> 0.7, 'psi0.5' -> 0.5."""
    s = token[3:]
    if "." in s or not s.startswith("0") or len(s) == 1:
        return float(s)
    return float("0." + s[1:])


def _tokens(key: str) -> list:
    return key.split("/", 1)[1].split("_")


def _opt_c(case):
    c = case.prefixed("input").get("c")
    return None if c is None or c.size == 0 else jnp.asarray(c, jnp.float32)


def run_generator_case(case, G, variables, extra_keys: tuple = ()) -> dict:
    """Runs every G forward named by the case's output/grad/buffer keys (StyleGAN2 and 3).

    Key grammar (golden README): ws_psi<p>[_cutoff<k>], img_psi<p>[_nonfused|_noise_none],
    img_G_forward_psi<p>, img_G_update_emas, grad/ws_psi<p>, buffer_after_update_emas/<name>.
    """
    z = jnp.asarray(case.arrays["input/z"])
    c = _opt_c(case)
    apply = _jitted_apply(G)
    res = {}
    for key in [k for k in case.arrays if k.startswith("output/")]:
        t = _tokens(key)
        if t[0] == "ws":
            cutoff = int(t[2][6:]) if len(t) > 2 and t[2].startswith("cutoff") else None
            ws = apply(variables, z, c, psi=parse_psi(t[1]), cutoff=cutoff, method="map")
            res[key] = np.asarray(ws)
        elif t[:2] == ["img", "G"] and t[2] == "forward":
            img, _ = apply(variables, z, c, psi=parse_psi(t[3]), noise_mode="const")
            res[key] = _nchw(img)
        elif t[:2] == ["img", "G"] and t[2:] == ["update", "emas"]:
            (img, _), new = apply(variables, z, c, noise_mode="const", update_emas=True,
                                  mutable=("ema_stats",))
            res[key] = _nchw(img)
            res.update(_ema_buffers(new))
        elif t[0] == "img":
            ws = jnp.asarray(case.arrays[f"output/ws_{t[1]}"])
            rest = "_".join(t[2:])
            kw = {"": {}, "nonfused": dict(fused_modconv=False),
                  "noise_none": dict(noise_mode="none")}
            if rest not in kw:
                raise ValueError(f"golden generator: cannot interpret {key}")
            img, _ = apply(variables, ws, **{"noise_mode": "const", **kw[rest]},
                           method="synthesize")
            res[key] = _nchw(img)
        elif key not in extra_keys:
            raise ValueError(f"golden generator: cannot interpret {key}")
    for key in [k for k in case.arrays if k.startswith("grad/")]:
        res[key] = _synthesis_grad(case, apply, variables, key)
    if any(k.startswith("buffer_after_update_emas/") for k in case.arrays) and \
            not any(k.startswith("buffer_after_update_emas/") for k in res):
        _, new = apply(variables, z, c, update_emas=True, mutable=("ema_stats",), method="map")
        res.update(_ema_buffers(new))
    return res


def _jitted_apply(model):
    """model.apply under jax.jit; keyword options (psi, modes, method, mutable) are static."""
    return jax.jit(model.apply, static_argnames=(
        "psi", "cutoff", "noise_mode", "fused_modconv", "update_emas", "method", "mutable"))


def _synthesis_grad(case, apply, variables, key):
    """d/d ws of sum(G.synthesis(ws, noise_mode='const') * R_img) at the stored ws."""
    t = _tokens(key)
    if t[0] != "ws" or len(t) != 2:
        raise ValueError(f"golden generator: cannot interpret {key}")
    ws = jnp.asarray(case.arrays[f"output/ws_{t[1]}"])
    r = _nhwc(case.arrays["cotangent/R_img"])
    f = lambda ws: jnp.sum(apply(variables, ws, noise_mode="const", method="synthesize")[0] * r)
    return np.asarray(jax.jit(jax.grad(f))(ws))


def _ema_buffers(new_vars) -> dict:
    """{'buffer_after_update_emas/<torch name>': value} from an `ema_stats` collection."""
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(new_vars["ema_stats"]))
    return {"buffer_after_update_emas/" + ".".join(k): np.asarray(v) for k, v in flat.items()}


def golden_generator(case, impl="xla") -> dict:
    """Runner for `training.networks_stylegan2.Generator` cases."""
    G = generator_from_kwargs(case.meta["constructor_kwargs"], impl=impl)
    variables = convert_state_dict(split_golden_state(case), G)
    return run_generator_case(case, G, variables)


def golden_discriminator(case, impl="xla") -> dict:
    """Runner for `training.networks_stylegan2.Discriminator` cases: logits and grad/img."""
    D = discriminator_from_kwargs(case.meta["constructor_kwargs"], impl=impl)
    variables = convert_state_dict(split_golden_state(case), D)
    img = _nhwc(case.arrays["input/img"])
    c = _opt_c(case)
    logits, vjp = jax.vjp(lambda x: _jitted_apply(D)(variables, x, c)[0], img)
    res = {"output/logits": np.asarray(logits)[:, None]}
    if "grad/img" in case.arrays:
        r = jnp.asarray(case.arrays["cotangent/R_logits"]).reshape(logits.shape)
        res["grad/img"] = _nchw(vjp(r)[0])
    return res
