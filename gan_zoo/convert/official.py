"""Load the official released networks without torch and without executing anything from the file.

    nets = load_official("stylegan2-ffhq-1024x1024.pkl")    # NVlabs network pickle
    nets = load_official("weights/BigGAN_run/")               # BigGAN-PyTorch checkpoint folder
    img, _ = nets.G.apply(nets.g_ema_variables, z, c, psi=0.7, noise_mode="const")   # StyleGAN
    img, _ = nets.G.apply(nets.g_ema_variables, z, labels, train=False)              # BigGAN

Files are parsed by `torch_pickle`'s restricted unpickler: it imports nothing, refuses every global
outside an allow-list of inert tensor/data records (`UnsafePickleError` names it), and keeps the
pickles' embedded `module_src` as text only.

Families (from the pickle's class names, its module children and kwargs):
- NVlabs pickles (stylegan2-ada-pytorch `training.networks`, stylegan3 `networks_stylegan2` /
  `networks_stylegan3`): `G`, `G_ema`, `D` persistent objects; a synthesis network with an
  `input` layer is StyleGAN3 (T or R by its kwargs), one with `b4` is StyleGAN2. The
  stylegan2-ada-pytorch Generator nests `synthesis_kwargs`; it is flattened.
- StyleGAN-XL pickles (autonomousvision/stylegan_xl `networks_stylegan3_resetting`): a stem
  `Generator` (its mapping takes `rand_embedding`) or a grown `SuperresGenerator`; G and G_ema
  are loaded (`gan_zoo.convert.stylegan_xl`), the Projected D is skipped with a warning.
- BigGAN-PyTorch checkpoints: `G_ema.pth`, `G.pth`, `D.pth` (zip or pre-1.6 format) with the run's
  `config` from `state_dict.pth` beside them (or `biggan_kwargs`); `config['model']` (or the deep
  blocks' `conv4`) tells BigGAN from BigGAN-deep.
"""

import dataclasses
import os
import pathlib
import re
import warnings
from typing import Optional

import numpy as np

from gan_zoo.convert import torch_pickle
from gan_zoo.convert.torch_pickle import PersistentObject, UnsafePickleError, read_torch_checkpoint

__all__ = ["OfficialNetworks", "UnsafePickleError", "load_official", "read_pickle",
           "read_torch_checkpoint"]


@dataclasses.dataclass
class OfficialNetworks:
    family: str  # "stylegan2" | "stylegan3" | "stylegan_xl" | "biggan" | "biggan_deep"
    path: str  # the file (or BigGAN checkpoint folder) read
    G: object  # gan_zoo flax module of the generator
    g_variables: Optional[dict]  # from the file's G (None if absent)
    g_ema_variables: Optional[dict]  # from G_ema (NVlabs) / G_ema.pth (BigGAN); None if absent
    D: object  # flax module of the discriminator, or None
    d_variables: Optional[dict]
    init_kwargs: dict  # {"G": official kwargs, "D": ...} as stored in the file / config
    extra: dict  # training_set_kwargs, augment_pipe p, BigGAN config, resolution, c_dim


# ----------------------------------------------------------------------------------------------
# Readers.

def read_pickle(path) -> dict:
    """Safe NVlabs network pickle -> its top-level dict. Networks (and the AugmentPipe) become
    `torch_pickle.PersistentObject`s: class_name, init_args, init_kwargs, state_dict (numpy),
    module children, plain attributes, module_src (text, never executed)."""
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"official network pickle: no file at {path}")
    try:
        data = torch_pickle.read_plain_pickle(path)
    except UnsafePickleError as e:
        if not any(f"'{m}" in str(e) for m in _PROJECTED_D_MODULES):
            raise
        raise UnsafePickleError(
            f"{path}: {e}. This looks like a StyleGAN-XL / Projected GAN training snapshot: its "
            "Projected D is a plain torch module (pg_modules, timm), which the safe reader "
            "does not load. Save the generator alone with the official code, e.g. "
            "pickle.dump({'G_ema': legacy.load_network_pkl(f)['G_ema']}, out)") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not an NVlabs network pickle (top level is "
                         f"{type(data).__name__}, expected a dict)")
    return data


# ----------------------------------------------------------------------------------------------
# NVlabs pickles.

# Modules of the StyleGAN-XL Projected D's (non-persistent) classes in a training snapshot.
_PROJECTED_D_MODULES = ("pg_modules.", "timm.", "feature_networks.", "torchvision.", "dill.")

# Kwargs only StyleGAN-XL's generators take (autonomousvision/stylegan_xl train.py,
# networks_stylegan3_resetting.py: class embedding, superresolution stages).
_XL_KWARGS = {"rand_embedding", "path_stem", "head_layers", "up_factor", "embed_path"}


def _nvlabs_family(rec: PersistentObject, where: str) -> str:
    if isinstance(rec, PersistentObject) and rec.class_name == "SuperresGenerator":
        return "stylegan_xl"
    if not isinstance(rec, PersistentObject) or rec.class_name != "Generator":
        name = getattr(rec, "class_name", type(rec).__name__)
        raise ValueError(f"{where}: generator record is {name!r}, expected a persistent "
                         "'Generator' or StyleGAN-XL 'SuperresGenerator' (unsupported "
                         "network family)")
    syn = rec.modules.get("synthesis")
    children = set(getattr(syn, "modules", {}) or {})
    kw = rec.init_kwargs
    if set(kw) & _XL_KWARGS or set(kw.get("mapping_kwargs") or {}) & _XL_KWARGS:
        return "stylegan_xl"
    if "input" in children and getattr(syn, "class_name", "") == "SynthesisNetwork":
        return "stylegan3"
    if "b4" in children and getattr(syn, "class_name", "") == "SynthesisNetwork":
        return "stylegan2"
    syn_name = getattr(syn, "class_name", None)
    raise ValueError(f"{where}: unsupported generator (synthesis {syn_name!r}"
                     f" with children {sorted(children)[:6]}, kwargs {sorted(kw)}): only "
                     "StyleGAN2 (stylegan2-ada-pytorch / stylegan3) and StyleGAN3-T/-R are known")


# Official defaults where gan_zoo's (= the stylegan3 repo's) differ: stylegan2-ada-pytorch
# `training/networks.py` clamps nothing unless asked and tracks w_avg with beta 0.995.
_SG2ADA_DEFAULTS = {"G": {"conv_clamp": None}, "G_mapping": {"w_avg_beta": 0.995},
                    "D": {"conv_clamp": None}}
_SUBDICTS = ("mapping_kwargs", "synthesis_kwargs", "block_kwargs", "epilogue_kwargs")


def is_sg2ada(rec: PersistentObject) -> bool:
    """stylegan2-ada-pytorch `training.networks` (vs the stylegan3 repo's networks_stylegan2):
    its Generator nests synthesis_kwargs and its source has no `fused_modconv_default`."""
    return "synthesis_kwargs" in rec.init_kwargs or (
        "class SynthesisBlock" in rec.module_src and "fused_modconv_default" not in
        rec.module_src)


def _pop_activation(kw: dict, where: str):
    """The official `activation` kwargs: only the StyleGAN default 'lrelu' is ported."""
    act = kw.pop("activation", "lrelu")
    if act != "lrelu":
        raise ValueError(f"{where}: activation={act!r} is not supported (only 'lrelu')")


def _stylegan_kwargs(rec: PersistentObject, role: str, where: str) -> dict:
    """Official G / D kwargs made ready for the gan_zoo converters: stylegan2-ada-pytorch's
    nested synthesis_kwargs flattened and its defaults filled in, 'lrelu' activations dropped,
    num_fp16_res dropped (float32 compute, as the official code on CPU / force_fp32), a D label
    mapping's embed/layer widths checked (None = cmap_dim)."""
    if rec.init_args:
        raise ValueError(f"{where}: {role} record has positional init args {rec.init_args!r}")
    kw = {k: (dict(v) if k in _SUBDICTS else v) for k, v in rec.init_kwargs.items()}
    if is_sg2ada(rec):
        kw = {**_SG2ADA_DEFAULTS[role], **kw}
        if role == "G":
            kw["mapping_kwargs"] = {**_SG2ADA_DEFAULTS["G_mapping"],
                                    **(kw.get("mapping_kwargs") or {})}
    kw.update(kw.pop("synthesis_kwargs", None) or {})
    _pop_activation(kw, f"{where} {role}")
    for sub in _SUBDICTS:
        if kw.get(sub):
            _pop_activation(kw[sub], f"{where} {role}.{sub}")
    kw.pop("num_fp16_res", None)
    mapping = kw.get("mapping_kwargs") or {}
    if role == "D":
        for k in ("embed_features", "layer_features"):
            if mapping.get(k, None) is not None and mapping[k] != kw.get("cmap_dim"):
                raise ValueError(f"{where}: D mapping_kwargs.{k}={mapping[k]} is not supported "
                                 "(only the default, = cmap_dim)")
            mapping.pop(k, None)
    return kw


def _convert(fn, state, model, what: str, where: str):
    try:
        return fn(state, model)
    except ValueError as e:
        raise ValueError(f"{where}: {what} does not match the gan_zoo network: {e}") from None


def _nvlabs_d(rec, path: str):
    """(D module, D variables, extra) of the pickle's D (None, None, {...} if absent/unknown)."""
    from gan_zoo.convert import stylegan2 as sg2c  # noqa: PLC0415

    if rec is None:
        return None, None, {}
    if rec.class_name != "Discriminator":
        why = f"D is {rec.class_name!r}; only the StyleGAN2 'Discriminator' is supported"
        warnings.warn(f"{path}: {why}: loading G only", stacklevel=4)
        return None, None, {"D_skipped": why}
    D = sg2c.discriminator_from_kwargs(_stylegan_kwargs(rec, "D", path))
    return D, _convert(sg2c.convert_state_dict, rec.state_dict, D, "D", path), {}


def _nvlabs_extra(data: dict, g_rec: PersistentObject) -> dict:
    extra = {"training_set_kwargs": data.get("training_set_kwargs"),
             "source_repo": "stylegan2-ada-pytorch" if is_sg2ada(g_rec) else "stylegan3",
             "resolution": g_rec.init_kwargs.get("img_resolution"),
             "c_dim": g_rec.init_kwargs.get("c_dim", 0), "keys": sorted(data)}
    aug = data.get("augment_pipe")
    if isinstance(aug, PersistentObject):
        p = aug.state_dict.get("p")
        extra["augment_pipe"] = {"class_name": aug.class_name, "init_kwargs": aug.init_kwargs,
                                 "p": None if p is None else float(np.asarray(p))}
    return extra


def _load_nvlabs(path: str) -> OfficialNetworks:
    from gan_zoo.convert import stylegan2 as sg2c  # noqa: PLC0415 (keeps `import gan_zoo` light)
    from gan_zoo.convert import stylegan3 as sg3c  # noqa: PLC0415

    data = read_pickle(path)
    nets = {k: data.get(k) for k in ("G", "G_ema", "D")}
    g_rec = nets["G_ema"] or nets["G"]
    if g_rec is None:
        raise ValueError(f"{path}: no 'G_ema' or 'G' network (keys {sorted(data)})")
    family = _nvlabs_family(g_rec, path)
    if family == "stylegan_xl":
        return _load_xl(path, data, nets, g_rec)
    conv = sg3c if family == "stylegan3" else sg2c
    G = conv.generator_from_kwargs(_stylegan_kwargs(g_rec, "G", path))
    gv = {k: _convert(conv.convert_state_dict, nets[k].state_dict, G, k, path)
          if nets[k] is not None else None for k in ("G", "G_ema")}
    D, dv, extra = _nvlabs_d(nets["D"], path)
    extra.update(_nvlabs_extra(data, g_rec))
    kwargs = {k: nets[k].init_kwargs for k in ("G", "D") if nets[k] is not None}
    kwargs.setdefault("G", g_rec.init_kwargs)
    return OfficialNetworks(family, path, G, gv["G"], gv["G_ema"], D, dv, kwargs, extra)


def _load_xl(path: str, data: dict, nets: dict, g_rec) -> OfficialNetworks:
    """StyleGAN-XL (stem Generator or SuperresGenerator): G and G_ema; the Projected D is not
    ported as an official network (warned, extra['D_skipped'])."""
    from gan_zoo.convert import stylegan_xl as xlc  # noqa: PLC0415

    G, meta = xlc.generator_from_record(g_rec, path)
    gv = {k: _convert(xlc.convert_state_dict, nets[k].state_dict, G, k, path)
          if nets[k] is not None else None for k in ("G", "G_ema")}
    extra = {**_nvlabs_extra(data, g_rec), **meta, "source_repo": "stylegan_xl",
             "c_dim": G.c_dim, "resolution": G.img_resolution}
    if nets["D"] is not None:
        why = (f"D is {getattr(nets['D'], 'class_name', type(nets['D']).__name__)!r}; the "
               "StyleGAN-XL Projected D is not loaded from official files")
        warnings.warn(f"{path}: {why}: loading G only", stacklevel=3)
        extra["D_skipped"] = why
    kwargs = {"G": g_rec.init_kwargs, "G_synthesis": meta["stem_kwargs"]}
    return OfficialNetworks("stylegan_xl", path, G, gv["G"], gv["G_ema"], None, None, kwargs,
                            extra)


# ----------------------------------------------------------------------------------------------
# BigGAN-PyTorch checkpoints.

_BIGGAN_NAME = re.compile(r"^(G_ema|G|D|state_dict)(.*)\.(pth|pt)$")


def _biggan_files(path: pathlib.Path) -> tuple[pathlib.Path, dict]:
    """(folder, {'G_ema'|'G'|'D'|'state_dict': file or None}); a file names the suffix
    (`G_ema_copy0.pth`, `G_ema.legacy.pth`) whose siblings are used."""
    folder, suffix, ext = path, "", "pth"
    if path.is_file():
        m = _BIGGAN_NAME.match(path.name)
        if not m:
            raise ValueError(f"{path}: not a BigGAN-PyTorch checkpoint file name "
                             "(G_ema*.pth, G*.pth, D*.pth)")
        folder, suffix, ext = path.parent, m.group(2), m.group(3)
    files = {}
    for kind in ("G_ema", "G", "D", "state_dict"):
        cands = [folder / f"{kind}{suffix}.{ext}"] + (
            [folder / f"{kind}.{ext}"] if kind == "state_dict" else [])
        files[kind] = next((c for c in cands if c.is_file()), None)
    if files["G_ema"] is None and files["G"] is None:
        raise ValueError(f"{path}: no G_ema{suffix}.{ext} or G{suffix}.{ext} in {folder}")
    return folder, files


def _biggan_config(files: dict, biggan_kwargs: Optional[dict], where: str) -> dict:
    config = {}
    if files["state_dict"] is not None:
        state = read_torch_checkpoint(files["state_dict"])
        config = dict(state.get("config") or {})
        if not config:
            raise ValueError(f"{files['state_dict']}: no 'config' in the training state")
    elif biggan_kwargs is None:
        raise ValueError(f"{where}: no state_dict.pth beside the weights to take the run's "
                         "config from; pass biggan_kwargs (e.g. resolution, G_ch, dim_z, "
                         "shared_dim, hier, G_attn, n_classes, model)")
    return {**config, **(biggan_kwargs or {})}


def _check_activation(config: dict, key: str, where: str):
    act = config.get(key)
    name = getattr(act, "class_name", act)
    if act is not None and not str(name).endswith("ReLU"):
        raise ValueError(f"{where}: {key}={name!r} is not supported (BigGAN uses ReLU)")


def _load_biggan(path: str, biggan_kwargs: Optional[dict]) -> OfficialNetworks:
    from gan_zoo.convert import biggan as bgc  # noqa: PLC0415

    folder, files = _biggan_files(pathlib.Path(path))
    config = _biggan_config(files, biggan_kwargs, path)
    sds = {k: read_torch_checkpoint(f) if f is not None else None
           for k, f in files.items() if k != "state_dict"}
    g_sd = sds["G_ema"] if sds["G_ema"] is not None else sds["G"]
    model = config.get("model") or ("BigGANdeep" if any(
        k.endswith("conv4.weight") for k in g_sd) else "BigGAN")
    if model not in ("BigGAN", "BigGANdeep"):
        raise ValueError(f"{path}: config model={model!r} is unsupported (BigGAN, BigGANdeep)")
    kwargs, nets, variables = {}, {}, {}
    for role, kind in (("G", "Generator"), ("D", "Discriminator")):
        cls = f"{model}.{kind}"
        _check_activation(config, f"{role}_activation", path)
        keys = set(bgc._TORCH_DEFAULTS[cls]) | set(bgc._REQUIRED)  # noqa: SLF001
        kwargs[role] = {k: v for k, v in config.items() if k in keys}
        ref = g_sd if role == "G" else sds["D"]
        if ref is None:
            nets[role] = None
            continue
        rgb = ref["output_layer.2.weight"].shape[0] if "output_layer.2.weight" in ref else 3
        nets[role] = bgc.model_from_torch_kwargs(cls, kwargs[role], rgb)
    for k, role in (("G_ema", "G"), ("G", "G"), ("D", "D")):
        variables[k] = None if sds[k] is None else _convert(
            bgc.torch_to_flax, sds[k], nets[role], files[k].name, path)
    extra = {"config": {k: (getattr(v, "class_name", v)) for k, v in config.items()},
             "resolution": nets["G"].resolution, "n_classes": kwargs["G"].get("n_classes"),
             "files": {k: None if f is None else str(f) for k, f in files.items()}}
    return OfficialNetworks("biggan_deep" if model == "BigGANdeep" else "biggan", path,
                            nets["G"], variables["G"], variables["G_ema"], nets["D"],
                            variables["D"], kwargs, extra)


# ----------------------------------------------------------------------------------------------

def load_official(path, *, biggan_kwargs: Optional[dict] = None) -> OfficialNetworks:
    """Reads an official file (NVlabs `.pkl`; BigGAN-PyTorch `.pth` or its checkpoint folder)
    and builds the matching gan_zoo networks with their variables (no torch, nothing executed)."""
    p = pathlib.Path(path)
    if not p.exists():
        raise FileNotFoundError(f"official network: no file or folder at {path}")
    if p.is_dir() or p.suffix in (".pth", ".pt") or _is_zip(p):
        return _load_biggan(str(path), biggan_kwargs)
    return _load_nvlabs(str(path))


def _is_zip(p: pathlib.Path) -> bool:
    import zipfile  # noqa: PLC0415

    return zipfile.is_zipfile(p)
