"""Official StyleGAN-XL generators (autonomousvision/stylegan_xl
`training/networks_stylegan3_resetting.py`: the 16^2 stem `Generator` and the grown
`SuperresGenerator`) read from a network pickle's records -> gan_zoo.models.stylegan_xl.

    G, meta = generator_from_record(pickle_dict["G_ema"], "net.pkl")
    variables = convert_state_dict(record.state_dict, G)

What the pickle holds (facts of the official code): a SuperresGenerator is pickled with its
loaded stem's modules, so its own init_kwargs name only img_resolution, head_layers,
up_factor and path_stem; the geometry comes from the stem SynthesisNetwork's init_kwargs (stem
resolution, widths, stem layers) and its attributes after growing (`layer_names`,
`img_resolution`). The head sizes of earlier stages are not stored: they are found as the
only head_layers whose layer table gives exactly `layer_names` (names carry index, size and
channels). The class table is the torch `nn.Embedding` `mapping.embed` ([rows, E], official
1000 x 320) -> Flax `mapping/embed/embedding` (same layout). Heads are built officially with
their own defaults (conv_clamp 256, num_critical 2); a stem with other values is reported.
"""

import itertools
import warnings

import numpy as np

from gan_zoo.convert import stylegan2 as sg2_convert
from gan_zoo.convert.stylegan2 import _IGNORED, _pop_known
from gan_zoo.models import stylegan3
from gan_zoo.models import stylegan_xl as xl

CLASSES = ("Generator", "SuperresGenerator")
_MAPPING = {"num_layers": "mapping_layers", "lr_multiplier": "mapping_lr_multiplier",
            "w_avg_beta": "w_avg_beta"}
_MAPPING_IGNORED = _IGNORED + ("z_dim", "c_dim", "w_dim", "num_ws", "rand_embedding")
# Official SynthesisNetwork / SynthesisLayer kwargs -> SynthesisNetwork fields.
_SYNTHESIS = {"channel_base": "channel_base", "channel_max": "channel_max",
              "num_layers": "stem_layers", "num_critical": "num_critical",
              "first_cutoff": "first_cutoff", "first_stopband": "first_stopband",
              "last_stopband_rel": "last_stopband_rel", "margin_size": "margin_size",
              "output_scale": "output_scale", "conv_kernel": "conv_kernel",
              "filter_size": "filter_size", "lrelu_upsampling": "lrelu_upsampling",
              "use_radial_filters": "use_radial_filters", "conv_clamp": "conv_clamp",
              "magnitude_ema_beta": "magnitude_ema_beta"}
_SYN_IGNORED = _IGNORED + ("w_dim", "img_resolution", "img_channels")
EMBED_TORCH, EMBED_FLAX = "mapping.embed.weight", "mapping.embed.embedding"
MAX_HEAD_LAYERS = 16  # search range of an earlier stage's head size


def _child(rec, name: str, where: str):
    child = rec.modules.get(name)
    if child is None or not hasattr(child, "init_kwargs"):
        raise ValueError(f"{where}: StyleGAN-XL {rec.class_name} has no persistent '{name}' "
                         f"module (children {sorted(rec.modules)})")
    return child


def _infer_head_layers(syn_kw: dict, stages: tuple, last: int, names: list, where: str):
    """The head_layers tuple whose layer table has exactly the pickle's `layer_names`."""
    base = dict(img_channels=syn_kw["img_channels"], channel_base=syn_kw["channel_base"],
                channel_max=syn_kw["channel_max"], stem_layers=syn_kw["stem_layers"],
                **{k: syn_kw[k] for k in ("first_cutoff", "first_stopband",
                                          "last_stopband_rel", "margin_size", "conv_kernel",
                                          "filter_size", "lrelu_upsampling",
                                          "use_radial_filters") if k in syn_kw})
    middle = range(3, MAX_HEAD_LAYERS + 1)  # a head needs > num_critical (2) layers
    for heads in itertools.product(middle, repeat=len(stages) - 2):
        table = xl.layer_table(stages, head_layers=heads + (last,), **base)
        if [s.name for s in table.layers] == list(names):
            return heads + (last,)
    raise ValueError(f"{where}: no StyleGAN-XL layer table over stages {stages} (last head "
                     f"{last} layers, earlier heads 3..{MAX_HEAD_LAYERS}) gives the pickle's "
                     f"synthesis layer_names {names}")


def _check_layer_clamps(syn, conv_clamp, where: str):
    """Officially a head's layers clamp at 256 whatever the stem's conv_clamp (--fp32: None)."""
    clamps = {name: getattr(layer, "init_kwargs", {}).get("conv_clamp", 256)
              for name, layer in syn.modules.items() if name.startswith("L")}
    other = sorted(n for n, c in clamps.items() if c != conv_clamp)
    if other:
        warnings.warn(f"{where}: layers {other} clamp at {clamps[other[0]]}, the stem at "
                      f"{conv_clamp}; gan_zoo uses {conv_clamp} everywhere (outputs differ "
                      "only where a head activation exceeds the clamp)", stacklevel=3)


def generator_from_record(rec, where: str) -> tuple:
    """(stylegan_xl.Generator, meta) of an official StyleGAN-XL G record (a
    torch_pickle.PersistentObject). meta: stages, head_layers, embed_table, stem kwargs."""
    if rec.class_name not in CLASSES:
        raise ValueError(f"{where}: generator record is {rec.class_name!r}, expected one of "
                         f"{CLASSES} (StyleGAN-XL)")
    syn, mapping = _child(rec, "synthesis", where), _child(rec, "mapping", where)
    skw = dict(syn.init_kwargs)
    stem_res, channels = int(skw["img_resolution"]), int(skw["img_channels"])
    syn_kw = _pop_known(skw, _SYNTHESIS, _SYN_IGNORED, f"{where} StyleGAN-XL synthesis")
    syn_kw.update(img_channels=channels, stem_layers=int(syn_kw.get("stem_layers", 14)))
    syn_kw.setdefault("channel_base", 32768)
    syn_kw.setdefault("channel_max", 512)
    if syn_kw.get("num_critical", 2) != 2:
        raise ValueError(f"{where}: synthesis num_critical={syn_kw['num_critical']} is not "
                         "supported (the official heads use 2)")
    res = int(syn.attrs.get("img_resolution", stem_res))
    stages = xl.stage_resolutions(res, stem_res)
    names = list(syn.attrs.get("layer_names") or [])
    heads = ()
    if len(stages) > 1:
        last = int(rec.init_kwargs.get("head_layers", 7))
        heads = _infer_head_layers(syn_kw, stages, last, names, where)
    _check_layer_clamps(syn, syn_kw.get("conv_clamp", 256), where)
    mkw = dict(mapping.init_kwargs)
    z_dim, c_dim, w_dim = int(mkw["z_dim"]), int(mkw["c_dim"]), int(mkw["w_dim"])
    map_kw = _pop_known(mkw, _MAPPING, _MAPPING_IGNORED, f"{where} StyleGAN-XL mapping")
    embed = rec.state_dict.get(EMBED_TORCH)
    if embed is None:
        raise ValueError(f"{where}: no {EMBED_TORCH} (the class embedding table) in the G")
    syn_fields = {k: v for k, v in syn_kw.items() if k != "img_channels"}
    syn_fields.update(stem_resolution=stem_res, head_layers=heads, num_critical=2)
    G = xl.Generator(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=res,
                     img_channels=channels, embed_table=tuple(int(d) for d in embed.shape),
                     **map_kw, synthesis_kwargs=tuple(sorted(syn_fields.items())))
    _check_names(G, names, where)
    meta = {"stages": stages, "head_layers": heads, "embed_table": tuple(embed.shape),
            "stem_kwargs": dict(syn.init_kwargs)}
    return G, meta


def _check_names(G: xl.Generator, names: list, where: str):
    ours = [s.name for s in G.table().layers]
    if names and ours != names:
        raise ValueError(f"{where}: the pickle's synthesis layers {names} differ from the "
                         f"gan_zoo StyleGAN-XL table {ours}")


def design_filters(G: xl.Generator):
    """torch buffer name -> the re-derived filter of G's layer table (None: no filter)."""
    table = {}
    for spec in G.table().layers:
        fu, fd = stylegan3.layer_filters(spec)
        table[f"synthesis.{spec.name}.up_filter"] = fu
        table[f"synthesis.{spec.name}.down_filter"] = fd
    return table.get


def convert_state_dict(state: dict, G: xl.Generator) -> dict:
    """Official G state dict {torch name: array} -> Flax variables of G (ValueError listing
    every mismatch). Unconditional G (c_dim 0): the unused class table is dropped."""
    state = dict(state)
    table = state.pop(EMBED_TORCH, None)
    if G.c_dim > 0 and table is not None:
        state[EMBED_FLAX] = np.asarray(table, np.float32)  # [rows, E], no transpose
    missing = [f"synthesis.{s.name}.{kind}" for s in G.table().layers
               for kind, f in zip(("up_filter", "down_filter"), stylegan3.layer_filters(s))
               if f is not None and f"synthesis.{s.name}.{kind}" not in state]
    if missing:
        raise ValueError(f"convert_state_dict(StyleGAN-XL Generator): filter buffers missing "
                         f"from the state dict (the geometry differs): {sorted(missing)}")
    return sg2_convert.convert_state_dict(state, G, design_filters=design_filters(G))


def read_class_embedding(path) -> np.ndarray:
    """The pretrained class table [rows, E] (official 1000 x 320: per-class means of pooled
    lowest-resolution EfficientNet-lite0 features, SG-XL §3.1) from the official
    `in_embeddings/tf_efficientnet_lite0.pkl` ({'embed': torch nn.Embedding}, read with the
    restricted unpickler: nothing runs) or an .npz holding 'embed' [rows, E]."""
    import os  # noqa: PLC0415

    from gan_zoo.convert import torch_pickle  # noqa: PLC0415

    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"class embedding: no file at {path}")
    if path.endswith(".npz"):
        with np.load(path) as f:
            if "embed" not in f.files:
                raise ValueError(f"{path}: no 'embed' array (keys {f.files})")
            table = np.asarray(f["embed"], np.float32)
    else:
        data = torch_pickle.read_plain_pickle(path)
        stub = data.get("embed") if isinstance(data, dict) else None
        if not isinstance(stub, torch_pickle.ModuleStubBase):
            keys = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"{path}: expected the official dict {{'embed': nn.Embedding}}, "
                             f"found {keys}")
        table = np.asarray(torch_pickle.module_state_dict(stub.state)["weight"], np.float32)
    if table.ndim != 2:
        raise ValueError(f"{path}: class embedding has shape {table.shape}, expected [rows, E]")
    return table
