"""Official StyleGAN3 (`networks_stylegan3.Generator`) state dicts -> Flax variables, and the
golden-harness runner. Names, layouts and collections as in `gan_zoo.convert.stylegan2`; the
`up_filter` / `down_filter` buffers are checked against `stylegan3.layer_filters` (a layer without
a filter has no such buffer, as in the official state dict).

    G = generator_from_kwargs(init_kwargs)
    variables = convert_state_dict(state_dict, G)
"""

import numpy as np

from gan_zoo.convert import stylegan2 as sg2_convert
from gan_zoo.convert.stylegan2 import _IGNORED, _pop_known, run_generator_case, split_golden_state
from gan_zoo.models import stylegan3

_MAPPING = {"num_layers": "mapping_layers", "lr_multiplier": "mapping_lr_multiplier",
            "w_avg_beta": "w_avg_beta"}
_TOP = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "channel_base",
        "channel_max", "num_layers", "num_critical", "first_cutoff", "first_stopband",
        "last_stopband_rel", "margin_size", "output_scale", "conv_kernel", "filter_size",
        "lrelu_upsampling", "use_radial_filters", "conv_clamp", "magnitude_ema_beta")


def generator_from_kwargs(kwargs: dict, impl: str = "auto") -> stylegan3.Generator:
    """stylegan3.Generator from the official Generator(**kwargs) arguments."""
    kwargs = dict(kwargs)
    mapping = _pop_known(kwargs.pop("mapping_kwargs", {}) or {}, _MAPPING, _IGNORED,
                         "stylegan3 Generator mapping_kwargs")
    top = _pop_known(kwargs, {k: k for k in _TOP}, _IGNORED, "stylegan3 Generator")
    return stylegan3.Generator(**top, **mapping, impl=impl)


def design_filters(G: stylegan3.Generator):
    """torch buffer name -> re-derived filter (None where the layer has no filter)."""
    _, layers = _specs(G)
    table = {}
    for spec in layers:
        fu, fd = stylegan3.layer_filters(spec)
        table[f"synthesis.{spec.name}.up_filter"] = fu
        table[f"synthesis.{spec.name}.down_filter"] = fd
    return table.get


def _specs(G: stylegan3.Generator):
    return stylegan3.layer_specs(
        G.img_resolution, G.img_channels, G.channel_base, G.channel_max, G.num_layers,
        G.num_critical, G.first_cutoff, G.first_stopband, G.last_stopband_rel, G.margin_size,
        G.conv_kernel, G.filter_size, G.lrelu_upsampling, G.use_radial_filters)


def convert_state_dict(state: dict, G: stylegan3.Generator):
    """Official state dict {torch name: array} -> Flax variables of G (ValueError on mismatch).

    Also raises if the design has a filter that the state dict lacks.
    """
    design = design_filters(G)
    missing = [f"synthesis.{s.name}.{kind}" for s in _specs(G)[1]
               for kind, f in zip(("up_filter", "down_filter"), stylegan3.layer_filters(s))
               if f is not None and f"synthesis.{s.name}.{kind}" not in state]
    if missing:
        raise ValueError(f"convert_state_dict(Generator): filter buffers missing from the state "
                         f"dict (the geometry differs): {sorted(missing)}")
    return sg2_convert.convert_state_dict(state, G, design_filters=design)


def golden_generator(case, impl="xla") -> dict:
    """Runner for `training.networks_stylegan3.Generator` cases."""
    G = generator_from_kwargs(case.meta["constructor_kwargs"], impl=impl)
    variables = convert_state_dict(split_golden_state(case), G)
    return run_generator_case(case, G, variables)


def layers_geometry(G: stylegan3.Generator) -> dict:
    """{layer name: geometry} in the format of the golden JSON `layers` field (for checks)."""
    out = {}
    for s in _specs(G)[1]:
        d = {k: getattr(s, k) for k in (
            "in_size", "out_size", "in_channels", "out_channels", "in_sampling_rate",
            "out_sampling_rate", "tmp_sampling_rate", "in_cutoff", "out_cutoff", "in_half_width",
            "out_half_width", "up_factor", "down_factor", "up_taps", "down_taps", "down_radial",
            "conv_kernel", "is_torgb", "is_critically_sampled")}
        d["padding"] = list(s.padding)
        out[s.name] = {k: (float(v) if isinstance(v, np.floating) else v) for k, v in d.items()}
    return out
