"""StyleGAN-XL generator: the class-conditional StyleGAN3-T at doubled widths, grown stage by
stage from a 16^2 stem. Sauer, Schwarz, Geiger 2022, "StyleGAN-XL: Scaling StyleGAN to Large
Diverse Datasets" §3.1-3.2 (spec: shared/spec/stylegan_xl_and_t.md §1.2, §1.3; code:
autonomousvision/stylegan_xl `training/networks_stylegan3_resetting.py`, whose names the Flax
names follow: `L<idx>_<size>_<channels>`, `mapping/embed`, `mapping/embed_proj`).

    G = generator("imagenet", img_resolution=32)         # stem 16^2 + one head
    variables = G.init({"params": key}, z, c)           # z [N, 64], c one-hot [N, 1000]
    variables = grow_variables(variables_16, variables, G)  # stem <- the 16^2 G's G_ema
    img, aux = G.apply(variables, z, c, psi=0.7)        # class-conditional truncation
    frozen = stem_mask(G, variables["params"])          # True = frozen (stem, mapping)

The layers of a stage are a pure function of the stage resolutions (`layer_table`): a 16^2 stem
of `stem_layers` layers; each later stage drops the previous stage's critically sampled layers
and ToRGB, and adds a head of `head_layers` layers + ToRGB whose filters start at the last kept
layer. The blocks are StyleGAN3's (`SynthesisInput`, `SynthesisLayer`) and StyleGAN2's mapping
network with the table embedding and per-class w_avg fields.
"""

import dataclasses
import functools
from typing import Optional

import flax.linen as nn
import numpy as np
from flax import traverse_util

from gan_zoo import checks
from gan_zoo.models import stylegan3
from gan_zoo.models.stylegan2_layers import MappingNetwork
from gan_zoo.models.stylegan3 import InputSpec, LayerSpec, layer_geometry, layer_specs


@dataclasses.dataclass(frozen=True)
class LayerTable:
    """Geometry of a grown synthesis network (design time)."""

    input: InputSpec  # the Fourier input (from the stem)
    layers: tuple  # LayerSpec per layer, ToRGB last; names as the official code's
    stage: tuple  # per layer: the resolution of the stage that added it
    stages: tuple  # stage resolutions, e.g. (16, 32, 64)

    @property
    def num_ws(self) -> int:
        return len(self.layers) + 1  # input + layers (incl. ToRGB)

    @property
    def num_layers(self) -> int:
        return len(self.layers) - 1  # excluding ToRGB (paper's count: 11, 16, ..., 39)


def stage_resolutions(img_resolution: int, stem_resolution: int = 16) -> tuple:
    """(stem_resolution, 2 stem_resolution, ..., img_resolution); the paper doubles per stage."""
    res, out = stem_resolution, [stem_resolution]
    while res < img_resolution:
        res *= 2
        out.append(res)
    if out[-1] != img_resolution:
        raise ValueError(f"stylegan_xl: img_resolution={img_resolution} is not stem_resolution="
                         f"{stem_resolution} times a power of 2")
    return tuple(out)


def default_head_layers(stages: tuple) -> tuple:
    """Layers per added head: 7, and 5 at 1024^2 (SG-XL §3.2, spec §1.3)."""
    return tuple(5 if r >= 1024 else 7 for r in stages[1:])


def _head_schedule(last: LayerSpec, res: int, n: int, channel_base: float, channel_max: int,
                   img_channels: int, num_critical: int, last_stopband_rel: float,
                   margin_size: int):
    """Cutoffs, rates, half-widths, sizes, channels of a head of n layers + ToRGB anchored to the
    last kept layer (official SuperresGenerator.compute_superres_filterparams)."""
    f_c0 = last.out_cutoff
    f_t0 = last.out_half_width + f_c0
    exponents = np.minimum(np.arange(n + 1) / (n - num_critical), 1)
    cutoffs = f_c0 * (res / 2 / f_c0) ** exponents
    stopbands = f_t0 * (res / 2 * last_stopband_rel / f_t0) ** exponents
    rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, res))))
    rates[0] = last.out_sampling_rate  # head layer 0 maps the stem's spec to itself
    widths = np.maximum(stopbands, rates / 2) - cutoffs
    sizes = rates + margin_size * 2
    sizes[-2:] = res
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[0] = last.out_channels
    channels[-1] = img_channels
    return rates, cutoffs, widths, sizes, channels


@functools.lru_cache(maxsize=None)
def layer_table(stages: tuple, img_channels: int = 3, channel_base: int = 65536,
                channel_max: int = 1024, stem_layers: int = 11,
                head_layers: Optional[tuple] = None, num_critical: int = 2,
                first_cutoff: float = 2, first_stopband: float = 2**2.1,
                last_stopband_rel: float = 2**0.3, margin_size: int = 10, conv_kernel: int = 3,
                filter_size: int = 6, lrelu_upsampling: int = 2,
                use_radial_filters: bool = False) -> LayerTable:
    """The layer geometry after growing through `stages` (SG-XL §3.2, spec §1.3).

    Stem: StyleGAN3's schedule at stages[0] with stem_layers layers. Per later stage R: drop the
    critically sampled layers and ToRGB; add a head whose schedule runs from the last kept layer
    (f_c0' = its cutoff, f_t0' = cutoff + half-width, s_0 = its rate, ch_0 = its channels) to
    cutoff R/2 and stopband R/2 2^0.3; head layer i is named L<i + kept + 1> as officially.
    """
    head_layers = default_head_layers(stages) if head_layers is None else tuple(head_layers)
    if len(head_layers) != len(stages) - 1:
        raise ValueError(f"layer_table: head_layers {head_layers} needs one entry per added "
                         f"stage of {stages}")
    geo = dict(conv_kernel=conv_kernel, filter_size=filter_size,
               lrelu_upsampling=lrelu_upsampling, radial=use_radial_filters)
    inp, layers = layer_specs(stages[0], img_channels, channel_base, channel_max, stem_layers,
                              num_critical, first_cutoff, first_stopband, last_stopband_rel,
                              margin_size, conv_kernel, filter_size, lrelu_upsampling,
                              use_radial_filters)
    stage = [stages[0]] * len(layers)
    for res, n in zip(stages[1:], head_layers):
        if n <= num_critical:
            raise ValueError(f"layer_table: head_layers={n} at {res}^2 must exceed "
                             f"num_critical={num_critical}")
        keep = [i for i, s in enumerate(layers) if not s.is_critically_sampled]
        layers, stage = [layers[i] for i in keep], [stage[i] for i in keep]
        sched = _head_schedule(layers[-1], res, n, channel_base, channel_max, img_channels,
                               num_critical, last_stopband_rel, margin_size)
        offset = len(layers) + 1  # official stem_len counts the input
        for i in range(n + 1):
            spec = layer_geometry(i, max(i - 1, 0), *sched, n, num_critical, **geo)
            layers.append(dataclasses.replace(
                spec, name=f"L{i + offset}_{spec.out_size}_{spec.out_channels}"))
            stage.append(res)
    return LayerTable(inp, tuple(layers), tuple(stage), tuple(stages))


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> img [N, R, R, C] through the grown layer table: Fourier input
    (ws[0]), layers (ws[1:]), output_scale. StyleGAN3-T blocks (SG-XL §3.1); the magnitude EMA
    is updated only when update_emas=True, which the Generator passes only when
    `update_magnitude_ema` (off in SG-XL: the official code never updates it)."""

    w_dim: int  # W dimensionality
    img_resolution: int  # R, the last stage
    img_channels: int = 3  # C
    channel_base: int = 65536  # SG-XL: 2x StyleGAN3-T's 32768
    channel_max: int = 1024  # SG-XL: 2x StyleGAN3-T's 512
    stem_resolution: int = 16  # resolution of the first stage
    stem_layers: int = 11  # N of the stem (SG-XL §3.2)
    head_layers: Optional[tuple] = None  # layers per added stage; None = 7 (5 at 1024^2)
    num_critical: int = 2  # critically sampled layers at the end of the stem and each head
    first_cutoff: float = 2  # f_c0
    first_stopband: float = 2**2.1  # f_t0
    last_stopband_rel: float = 2**0.3  # f_t,N / f_c,N
    margin_size: int = 10  # extra pixels around the image
    output_scale: float = 0.25  # final image scale
    conv_kernel: int = 3  # 3 (T; SG-XL) or 1 (R)
    filter_size: int = 6  # taps per unit of the lower rate
    lrelu_upsampling: int = 2  # relative rate of the lrelu
    use_radial_filters: bool = False  # config R
    conv_clamp: Optional[float] = 256  # clamp after every lrelu
    magnitude_ema_beta: float = 0.999  # magnitude EMA decay (inactive unless updated)
    impl: str = "auto"  # op implementation
    num_fp16_res: int = 0  # fp16 layers: rate * 2^N > the resolution of the layer's stage
    fp16_dtype: str = "bfloat16"  # reduced dtype name (see gan_zoo.nn.precision)

    def table(self) -> LayerTable:
        return layer_table(stage_resolutions(self.img_resolution, self.stem_resolution),
                           self.img_channels, self.channel_base, self.channel_max,
                           self.stem_layers, self.head_layers, self.num_critical,
                           self.first_cutoff, self.first_stopband, self.last_stopband_rel,
                           self.margin_size, self.conv_kernel, self.filter_size,
                           self.lrelu_upsampling, self.use_radial_filters)

    @nn.compact
    def __call__(self, ws, update_emas=False, fused_modconv="auto"):
        t = self.table()
        checks.check_shape("stylegan_xl.SynthesisNetwork: ws", ws, [None, t.num_ws, self.w_dim])
        # A layer keeps the dtype of the stage that built it (official: the stem module is
        # reused as is), so a frozen stem computes the same after growing.
        return stylegan3.run_synthesis(self, t.input, t.layers, t.stage, ws, update_emas,
                                       fused_modconv)


class Generator(nn.Module):
    """StyleGAN-XL generator G = g(f(z, c)). SG-XL §3.1 (z 64, pretrained class embedding,
    StyleGAN3-T), §3.2 (progressive growing), §4.1 (class-conditional truncation).

    z: [N, z_dim], c: one-hot [N, c_dim] or None -> (img [N, R, R, C], aux {"ws"}).
    f: normalise(z) ++ normalise(embed_proj(embed[argmax c])) -> 2 FC (lr_mul 0.01) -> w;
    w_avg per class ([c_dim, w_dim], EMA 0.998 per sample) when c_dim > 0.
    """

    z_dim: int = 64  # SG-XL §3.1: low-dimensional z
    c_dim: int = 0  # number of classes (one-hot labels), 0 = unconditional
    w_dim: int = 512  # W dimensionality
    img_resolution: int = 16  # R, the last stage
    img_channels: int = 3  # C
    embed_table: tuple = (1000, 320)  # EfficientNet-lite0 class table [rows, E] (spec §1.2)
    mapping_layers: int = 2  # FC layers of f
    mapping_lr_multiplier: float = 0.01  # lr_mul of f
    w_avg_beta: float = 0.998  # w_avg EMA decay
    update_magnitude_ema: bool = False  # SG-XL code: never (it "leads to collapse with PG")
    synthesis_kwargs: tuple = ()  # (field, value) pairs of SynthesisNetwork

    def setup(self):
        self.synthesis = SynthesisNetwork(self.w_dim, self.img_resolution, self.img_channels,
                                          **dict(self.synthesis_kwargs))
        self.mapping = MappingNetwork(
            self.z_dim, self.c_dim, self.w_dim, self.num_ws, num_layers=self.mapping_layers,
            embed_features=self.z_dim, lr_multiplier=self.mapping_lr_multiplier,
            w_avg_beta=self.w_avg_beta, embed_table=self.embed_table,
            class_w_avg=self.c_dim > 0)

    def table(self) -> LayerTable:
        return SynthesisNetwork(self.w_dim, self.img_resolution, self.img_channels,
                                **dict(self.synthesis_kwargs), parent=None).table()

    @property
    def num_ws(self) -> int:
        return self.table().num_ws

    def map(self, z, c=None, psi=1.0, cutoff=None, update_emas=False):
        """f(z, c) with class-conditional truncation: -> ws [N, num_ws, w_dim]."""
        return self.mapping(z, c, psi=psi, cutoff=cutoff, update_emas=update_emas)

    def synthesize(self, ws, noise_mode="random", fused_modconv="auto", update_emas=False):
        """g(ws): [N, num_ws, w_dim] -> (img [N, R, R, C], {"ws": ws})."""
        del noise_mode  # StyleGAN3 has no noise inputs.
        update = update_emas and self.update_magnitude_ema
        return self.synthesis(ws, update_emas=update, fused_modconv=fused_modconv), {"ws": ws}

    def __call__(self, z, c=None, psi=1.0, cutoff=None, noise_mode="random", update_emas=False,
                 fused_modconv="auto"):
        ws = self.map(z, c, psi=psi, cutoff=cutoff, update_emas=update_emas)
        return self.synthesize(ws, update_emas=update_emas, fused_modconv=fused_modconv)


# ----- Growing: the stem of a stage is the previous stage's G minus its critical layers -----

def stem_layer_names(G: Generator) -> tuple:
    """Synthesis layers of G built by earlier stages (frozen when G trains its head)."""
    t = G.table()
    return tuple(s.name for s, r in zip(t.layers, t.stage) if r < G.img_resolution)


def _is_stem_path(path: tuple, stem: frozenset) -> bool:
    """mapping/* (embedding included), synthesis/input/* and the stem layers (spec §1.3)."""
    if path[0] == "mapping":
        return True
    return path[0] == "synthesis" and (path[1] == "input" or path[1] in stem)


def stem_mask(G: Generator, params) -> dict:
    """Pytree of bools shaped like `params`: True = frozen stem parameter (SG-XL §3.2: the lower
    layers and G_m are frozen in super-resolution stages). All False for a stem-only G."""
    stem = frozenset(stem_layer_names(G))
    grown = G.img_resolution > G.table().stages[0]
    flat = traverse_util.flatten_dict(nn.unbox(params))
    return traverse_util.unflatten_dict(
        {k: grown and _is_stem_path(k, stem) for k in flat})


def grow_variables(src_variables, dst_variables, dst: Generator) -> dict:
    """Copy the stem of a lower-resolution G (its G_ema: mapping with embedding and w_avg,
    Fourier input and buffers, kept layers) into a new G's variables, every collection; the new
    head keeps its fresh init (official SuperresGenerator.reinit_stem). Raises ValueError naming
    the first missing or mis-shaped entry."""
    stem = frozenset(stem_layer_names(dst))
    out = {}
    for col, tree in dst_variables.items():
        src = traverse_util.flatten_dict(nn.unbox(src_variables.get(col, {})))
        flat = traverse_util.flatten_dict(nn.unbox(tree))
        for key, value in flat.items():
            if not _is_stem_path(key, stem):
                continue
            name = f"{col}/{'/'.join(key)}"
            if key not in src:
                raise ValueError(f"grow_variables: the source G has no {name} (expected the "
                                 f"stem of a G at {dst.table().stages[-2]}^2 with the same "
                                 "widths and stem/head layers)")
            if src[key].shape != value.shape:
                raise ValueError(f"grow_variables: {name} has shape {src[key].shape} in the "
                                 f"source G, {value.shape} in the new G")
            flat[key] = src[key]
        out[col] = traverse_util.unflatten_dict(flat)
    return out


# SG-XL presets (paper scale: train.py defaults doubled, spec §1.2/§1.7; the README's small
# setting for small or curated datasets), plus tiny `_test` rows. Pick the stage with
# img_resolution; c_dim per dataset.
VARIANTS = {
    "imagenet": dict(z_dim=64, w_dim=512, c_dim=1000, embed_table=(1000, 320),
                     channel_base=65536, channel_max=1024, stem_layers=11),
    # README: "--cbase 16384 --cmax 256 --syn_layers 7", heads "--head_layers 4" (cbase/cmax are
    # doubled by train.py for SG-XL).
    "small": dict(z_dim=64, w_dim=512, embed_table=(1000, 320), channel_base=32768,
                  channel_max=512, stem_layers=7, head_layers_default=4),
}
_TINY = dict(z_dim=8, w_dim=16, embed_table=(10, 12), channel_base=256, channel_max=16,
             stem_layers=5, head_layers_default=3)
VARIANTS["imagenet_test"] = dict(VARIANTS["imagenet"], c_dim=10, **_TINY)
VARIANTS["small_test"] = dict(VARIANTS["small"], **_TINY)

_G_FIELDS = frozenset(f.name for f in dataclasses.fields(Generator)) - {"parent", "name"}


def generator(variant: str, img_resolution: int = 16, **overrides) -> Generator:
    """Generator of a VARIANTS row at the stage `img_resolution`; keyword overrides win. Keys
    that are not Generator fields go to the SynthesisNetwork; `head_layers_default=n` sets n
    layers for every head (the paper: 7, 5 at 1024^2)."""
    if variant not in VARIANTS:
        raise ValueError(f"stylegan_xl: unknown variant {variant!r}; expected {sorted(VARIANTS)}")
    kw = {**VARIANTS[variant], "img_resolution": img_resolution, **overrides}
    n_head = kw.pop("head_layers_default", None)
    if n_head is not None and "head_layers" not in kw:
        stages = stage_resolutions(img_resolution, kw.get("stem_resolution", 16))
        kw["head_layers"] = (n_head,) * (len(stages) - 1)
    syn = tuple(sorted((k, v) for k, v in kw.items() if k not in _G_FIELDS))
    return Generator(**{k: v for k, v in kw.items() if k in _G_FIELDS}, synthesis_kwargs=syn)
