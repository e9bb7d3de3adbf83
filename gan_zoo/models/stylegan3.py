"""StyleGAN3 (alias-free) generator, configs T and R. Karras et al. 2021, "Alias-Free Generative
Adversarial Networks" (spec: shared/spec/stylegan_xl_and_t.md §1.1; code: NVlabs/stylegan3
`training/networks_stylegan3.py`, whose torch names the Flax names follow).

    G = generator("config-t", z_dim=512, w_dim=512, img_resolution=256)
    variables = G.init({"params": key}, z, None)
    img, aux = G.apply(variables, z, None, psi=0.7)                  # img [N, R, R, C], aux["ws"]
    (img, aux), new = G.apply(variables, z, None, update_emas=True, mutable=["ema_stats"])

Collections: `params`; `ema_stats` (`mapping/w_avg`, `synthesis/<layer>/magnitude_ema`, written
when update_emas=True); `buffers` (`synthesis/input/{freqs, phases, transform}`: random at init,
so load them; `transform` is the user's inverse output transform, editable at inference).
The per-layer filter schedule is design-time (`layer_specs`); the filters are NumPy constants.
The StyleGAN3 discriminator is the StyleGAN2 one (`gan_zoo.models.stylegan2.Discriminator`).
"""

import dataclasses
import functools
from typing import Optional, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan_zoo import checks, ops
from gan_zoo.models.stylegan2_layers import BUFFERS, EMA, MappingNetwork, lerp
from gan_zoo.nn import EqualizedDense, precision


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """Geometry of one synthesis layer (official `SynthesisLayer` attributes), design time."""

    name: str  # 'L<idx>_<out_size>_<out_channels>'
    is_torgb: bool  # last layer: 1x1, no filters, linear
    is_critically_sampled: bool  # cutoff = bandlimit (last num_critical layers + ToRGB)
    in_channels: int
    out_channels: int
    in_size: int  # spatial size incl. margin
    out_size: int
    in_sampling_rate: int  # s
    out_sampling_rate: int
    tmp_sampling_rate: int  # rate of the lrelu: max(s_in, s_out) * lrelu_upsampling
    in_cutoff: float  # f_c, cycles per unit
    out_cutoff: float
    in_half_width: float  # f_h, transition half-width
    out_half_width: float
    up_factor: int
    down_factor: int
    up_taps: int  # 1 = no filter
    down_taps: int
    down_radial: bool  # config R: jinc down filter (not in critically sampled layers)
    padding: tuple  # (x0, x1, y0, y1) of the up-sampled signal
    conv_kernel: int  # 1 for ToRGB


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """Fourier-feature input geometry (StyleGAN3 §3.1)."""

    channels: int
    size: int  # s0 + 2 * margin
    sampling_rate: float  # s0
    bandwidth: float  # f_c0


def layer_geometry(i, prev, rates, cutoffs, widths, sizes, channels, n, num_critical,
                    conv_kernel, filter_size, lrelu_upsampling, radial) -> LayerSpec:
    """One layer's factors, taps and padding (official SynthesisLayer.__init__)."""
    is_torgb = i == n
    s_in, s_out = int(rates[prev]), int(rates[i])
    tmp = max(s_in, s_out) * (1 if is_torgb else lrelu_upsampling)
    up, down = tmp // s_in, tmp // s_out
    assert s_in * up == tmp and s_out * down == tmp, (s_in, s_out, tmp)
    up_taps = filter_size * up if up > 1 and not is_torgb else 1
    down_taps = filter_size * down if down > 1 and not is_torgb else 1
    k = 1 if is_torgb else conv_kernel
    in_size, out_size = int(sizes[prev]), int(sizes[i])
    # Padding so the output has out_size samples, centred (StyleGAN3 App. C.3).
    pad_total = (out_size - 1) * down + 1 - (in_size + k - 1) * up + up_taps + down_taps - 2
    pad_lo = (pad_total + up) // 2
    pad_hi = pad_total - pad_lo
    return LayerSpec(
        name=f"L{i}_{out_size}_{int(channels[i])}", is_torgb=is_torgb,
        is_critically_sampled=i >= n - num_critical, in_channels=int(channels[prev]),
        out_channels=int(channels[i]), in_size=in_size, out_size=out_size,
        in_sampling_rate=s_in, out_sampling_rate=s_out, tmp_sampling_rate=tmp,
        in_cutoff=float(cutoffs[prev]), out_cutoff=float(cutoffs[i]),
        in_half_width=float(widths[prev]), out_half_width=float(widths[i]), up_factor=up,
        down_factor=down, up_taps=up_taps, down_taps=down_taps,
        down_radial=radial and i < n - num_critical, padding=(pad_lo, pad_hi, pad_lo, pad_hi),
        conv_kernel=k)


@functools.lru_cache(maxsize=None)
def layer_specs(img_resolution: int, img_channels: int = 3, channel_base: int = 32768,
                channel_max: int = 512, num_layers: int = 14, num_critical: int = 2,
                first_cutoff: float = 2, first_stopband: float = 2**2.1,
                last_stopband_rel: float = 2**0.3, margin_size: int = 10, conv_kernel: int = 3,
                filter_size: int = 6, lrelu_upsampling: int = 2,
                use_radial_filters: bool = False) -> tuple:
    """(InputSpec, (LayerSpec, ...)): the per-layer filter schedule (spec §1.1, SG3 §3.2).

    e_i = min(i / (N - n_crit), 1); f_c,i = f_c0 (R/2 / f_c0)^e_i; f_t,i = f_t0 (R/2 2^0.3 /
    f_t0)^e_i; s_i = 2^ceil(log2(min(2 f_t,i, R))); f_h,i = max(f_t,i, s_i/2) - f_c,i;
    size_i = s_i + 2 margin (last two: R); ch_i = rint(min(channel_base/2 / f_c,i, channel_max)).
    """
    n = num_layers
    if n <= num_critical:
        raise ValueError(f"layer_specs: num_layers={n} must exceed num_critical={num_critical}")
    last_cutoff = img_resolution / 2
    exponents = np.minimum(np.arange(n + 1) / (n - num_critical), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
    stopbands = first_stopband * (last_cutoff * last_stopband_rel / first_stopband) ** exponents
    rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    widths = np.maximum(stopbands, rates / 2) - cutoffs
    sizes = rates + margin_size * 2
    sizes[-2:] = img_resolution
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[-1] = img_channels
    inp = InputSpec(int(channels[0]), int(sizes[0]), float(rates[0]), float(cutoffs[0]))
    layers = tuple(layer_geometry(i, max(i - 1, 0), rates, cutoffs, widths, sizes, channels, n,
                                   num_critical, conv_kernel, filter_size, lrelu_upsampling,
                                   use_radial_filters) for i in range(n + 1))
    return inp, layers


@functools.lru_cache(maxsize=None)
def layer_filters(spec: LayerSpec) -> tuple:
    """(up_filter, down_filter) of a layer: Kaiser firwin (radial jinc for R's down filter), or
    None for no filter. StyleGAN3 §3.2, App. C."""
    fu = ops.design_lowpass_filter(spec.up_taps, spec.in_cutoff, spec.in_half_width * 2,
                                   spec.tmp_sampling_rate)
    fd = ops.design_lowpass_filter(spec.down_taps, spec.out_cutoff, spec.out_half_width * 2,
                                   spec.tmp_sampling_rate, radial=spec.down_radial)
    return fu, fd


def _draw_freqs(key, channels: int, bandwidth: float):
    """Random frequencies in a disc of radius `bandwidth` and phases in [-0.5, 0.5) (SG3 code)."""
    kf, kp = jax.random.split(key)
    freqs = jax.random.normal(kf, (channels, 2))
    radii = jnp.sqrt(jnp.sum(jnp.square(freqs), axis=1, keepdims=True))
    freqs = freqs / (radii * jnp.exp(jnp.square(radii)) ** 0.25) * bandwidth
    return freqs, jax.random.uniform(kp, (channels,)) - 0.5


class SynthesisInput(nn.Module):
    """Fourier-feature input with a learned rotation/translation. StyleGAN3 §3.1, App. F.

    w: [N, w_dim] -> [N, size, size, channels]. Affine t = (r_c, r_s, t_x, t_y), weight init 0 and
    bias init (1, 0, 0, 0); a trainable channel mixing `weight` [I, O].
    """

    spec: InputSpec  # channels, size, sampling rate, bandwidth

    @nn.compact
    def __call__(self, w):
        c = self.spec.channels
        t = EqualizedDense(4, weight_init=0.0, bias_init=(1.0, 0.0, 0.0, 0.0), name="affine")(w)
        weight = self.param("weight", nn.initializers.normal(1.0), (c, c))  # [I, O]
        freqs = self.variable(BUFFERS, "freqs", lambda: _draw_freqs(
            self.make_rng("params"), c, self.spec.bandwidth)[0])
        phases = self.variable(BUFFERS, "phases", lambda: _draw_freqs(
            self.make_rng("params"), c, self.spec.bandwidth)[1])
        transform = self.variable(BUFFERS, "transform", jnp.eye, 3, dtype=jnp.float32)
        return ops.fourier_features(t, freqs.value, phases.value, transform.value, weight.T,
                                    size=self.spec.size, sampling_rate=self.spec.sampling_rate,
                                    bandwidth=self.spec.bandwidth)


class SynthesisLayer(nn.Module):
    """Modulated conv + filtered leaky ReLU. StyleGAN3 §3.2 (alias-free layer), App. D.

    x: [N, in_size, in_size, I], w: [N, w_dim] -> [N, out_size, out_size, O]. The input is scaled by
    rsqrt(magnitude_ema), an EMA of mean(x^2) updated before use when update_emas=True.
    """

    spec: LayerSpec  # geometry from layer_specs
    conv_clamp: Optional[float] = 256  # clamp after the lrelu
    magnitude_ema_beta: float = 0.999  # EMA decay of the input magnitude
    impl: str = "auto"  # op implementation
    dtype: str = "float32"  # compute dtype of the conv and lrelu (official use_fp16 layers)

    @nn.compact
    def __call__(self, x, w, update_emas=False, fused_modconv="auto"):
        s = self.spec
        checks.check_shape(f"SynthesisLayer {s.name}: x", x,
                           [None, s.in_size, s.in_size, s.in_channels])
        # Magnitude EMA -> input gain.
        ema = self.variable(EMA, "magnitude_ema", jnp.ones, (), jnp.float32)
        if update_emas and not self.is_initializing():
            cur = jnp.mean(jnp.square(jax.lax.stop_gradient(x).astype(jnp.float32)))
            ema.value = lerp(cur, ema.value, self.magnitude_ema_beta)
        input_gain = jax.lax.rsqrt(ema.value)
        # Styles; ToRGB scales them by 1/sqrt(I k^2) instead of demodulating.
        styles = EqualizedDense(s.in_channels, bias_init=1.0, name="affine")(w)
        if s.is_torgb:
            styles = styles * (1 / np.sqrt(s.in_channels * s.conv_kernel**2))
        k = s.conv_kernel
        weight = self.param("weight", nn.initializers.normal(1.0),
                            (k, k, s.in_channels, s.out_channels))  # [k, k, I, O]
        x = x.astype(precision.as_dtype(self.dtype))  # float32 params, cast at use
        x = ops.modulated_conv2d_sg3(x, weight, styles, demodulate=not s.is_torgb,
                                     padding=k - 1, input_gain=input_gain,
                                     fused_modconv=fused_modconv)
        # Bias, up-FIR, lrelu, clamp, down-FIR.
        bias = self.param("bias", nn.initializers.zeros, (s.out_channels,))
        fu, fd = layer_filters(s)
        return ops.filtered_lrelu(x, fu, fd, bias, up=s.up_factor, down=s.down_factor,
                                  padding=list(s.padding), gain=1 if s.is_torgb else np.sqrt(2),
                                  slope=1 if s.is_torgb else 0.2, clamp=self.conv_clamp,
                                  impl=self.impl)


class SynthesisNetwork(nn.Module):
    """ws [N, num_layers + 2, w_dim] -> img [N, R, R, C]: input (ws[0]), layers (ws[1:]), then
    output_scale. StyleGAN3 §3, config T (3x3 convs) or R (1x1 convs, radial filters)."""

    w_dim: int  # W dimensionality
    img_resolution: int  # R
    img_channels: int = 3  # C
    channel_base: int = 32768  # config T: 32768, R: 65536
    channel_max: int = 512  # config T: 512, R: 1024
    num_layers: int = 14  # N, excluding input and ToRGB
    num_critical: int = 2  # critically sampled layers at the end
    first_cutoff: float = 2  # f_c0
    first_stopband: float = 2**2.1  # f_t0
    last_stopband_rel: float = 2**0.3  # f_t,N / f_c,N
    margin_size: int = 10  # extra pixels around the image
    output_scale: float = 0.25  # final image scale
    conv_kernel: int = 3  # 3 (T) or 1 (R)
    filter_size: int = 6  # taps per unit of the lower rate
    lrelu_upsampling: int = 2  # relative rate of the lrelu
    use_radial_filters: bool = False  # config R
    conv_clamp: Optional[float] = 256  # clamp after every lrelu
    magnitude_ema_beta: float = 0.999  # magnitude EMA decay
    impl: str = "auto"  # op implementation
    num_fp16_res: int = 0  # layers with sampling rate * 2^N > R compute in fp16_dtype (off: 4)
    fp16_dtype: str = "bfloat16"  # reduced dtype: 'bfloat16' | 'float16' | 'float32' | 'auto'

    def specs(self):
        return layer_specs(self.img_resolution, self.img_channels, self.channel_base,
                           self.channel_max, self.num_layers, self.num_critical,
                           self.first_cutoff, self.first_stopband, self.last_stopband_rel,
                           self.margin_size, self.conv_kernel, self.filter_size,
                           self.lrelu_upsampling, self.use_radial_filters)

    @nn.compact
    def __call__(self, ws, update_emas=False, fused_modconv="auto"):
        inp, layers = self.specs()
        checks.check_shape("SynthesisNetwork: ws", ws, [None, self.num_layers + 2, self.w_dim])
        return run_synthesis(self, inp, layers, [self.img_resolution] * len(layers), ws,
                             update_emas, fused_modconv)


def run_synthesis(net, inp, layers, resolutions, ws, update_emas, fused_modconv):
    """The body of a StyleGAN3-style synthesis network, called inside `net`'s compact
    `__call__`: Fourier input from ws[:, 0], layer i from ws[:, i + 1] in the reduced dtype its
    sampling rate and `resolutions[i]` give (`precision.sg3_layer_dtype`), times output_scale.
    net: the calling module (fields conv_clamp, magnitude_ema_beta, impl, num_fp16_res,
    fp16_dtype, output_scale). ws: [N, len(layers) + 2, w_dim] -> img [N, R, R, C] float32."""
    ws = ws.astype(jnp.float32)
    x = SynthesisInput(inp, name="input")(ws[:, 0])
    for i, (spec, res) in enumerate(zip(layers, resolutions)):
        dtype = precision.sg3_layer_dtype(spec.out_sampling_rate, res, net.num_fp16_res,
                                          net.fp16_dtype)
        x = SynthesisLayer(spec, net.conv_clamp, net.magnitude_ema_beta, net.impl, dtype=dtype,
                           name=spec.name)(x, ws[:, i + 1], update_emas=update_emas,
                                           fused_modconv=fused_modconv)
    if net.output_scale != 1:
        x = x * net.output_scale
    return x.astype(jnp.float32)


class Generator(nn.Module):
    """StyleGAN3 generator G = g(f(z, c)). StyleGAN3 §3 (configs T / R).

    z: [N, z_dim], c: [N, c_dim] or None -> (img [N, R, R, C], aux {"ws": [N, num_ws, w_dim]}).
    Entry points: __call__, `map` (f with truncation), `synthesize` (g); submodules `mapping`,
    `synthesis`. noise_mode is accepted for a uniform signature and ignored (no noise in SG3).
    """

    z_dim: int  # Z dimensionality (512)
    c_dim: int  # label dimensionality, 0 = unconditional
    w_dim: int  # W dimensionality (512)
    img_resolution: int  # R
    img_channels: int = 3  # C
    # Mapping network: 2 FC layers, lr_mul 0.01, w_avg decay 0.998.
    mapping_layers: int = 2  # FC layers of f
    mapping_lr_multiplier: float = 0.01  # lr_mul of f
    w_avg_beta: float = 0.998  # w_avg EMA decay
    # Synthesis network (see SynthesisNetwork).
    channel_base: int = 32768  # config T: 32768, R: 65536
    channel_max: int = 512  # config T: 512, R: 1024
    num_layers: int = 14  # N
    num_critical: int = 2  # critically sampled layers
    first_cutoff: float = 2  # f_c0
    first_stopband: float = 2**2.1  # f_t0
    last_stopband_rel: float = 2**0.3  # f_t,N / f_c,N
    margin_size: int = 10  # extra pixels
    output_scale: float = 0.25  # final image scale
    conv_kernel: int = 3  # 3 (T) or 1 (R)
    filter_size: int = 6  # filter taps per unit of the lower rate
    lrelu_upsampling: int = 2  # relative lrelu rate
    use_radial_filters: bool = False  # config R
    conv_clamp: Optional[float] = 256  # clamp after every lrelu
    magnitude_ema_beta: float = 0.999  # magnitude EMA decay (train.py: 0.5 ** (batch / 20k))
    impl: str = "auto"  # op implementation
    # Modulated conv execution: True (grouped, as official) / False / "auto" (see
    # use_fused of ops/modulated_conv2d.py).
    fused_modconv_default: Union[bool, str, None] = "auto"
    num_fp16_res: int = 0  # layers with sampling rate * 2^N > R in fp16_dtype (official: 4)
    fp16_dtype: str = "bfloat16"  # reduced dtype: 'bfloat16' | 'float16' | 'float32' | 'auto'

    def setup(self):
        self.synthesis = SynthesisNetwork(
            self.w_dim, self.img_resolution, self.img_channels, self.channel_base,
            self.channel_max, self.num_layers, self.num_critical, self.first_cutoff,
            self.first_stopband, self.last_stopband_rel, self.margin_size, self.output_scale,
            self.conv_kernel, self.filter_size, self.lrelu_upsampling, self.use_radial_filters,
            self.conv_clamp, self.magnitude_ema_beta, self.impl,
            num_fp16_res=self.num_fp16_res, fp16_dtype=self.fp16_dtype)
        self.mapping = MappingNetwork(
            self.z_dim, self.c_dim, self.w_dim, self.num_layers + 2,
            num_layers=self.mapping_layers, lr_multiplier=self.mapping_lr_multiplier,
            w_avg_beta=self.w_avg_beta)

    @property
    def num_ws(self) -> int:
        return self.num_layers + 2

    def map(self, z, c=None, psi=1.0, cutoff=None, update_emas=False):
        """f(z, c) with truncation: [N, z_dim] -> ws [N, num_ws, w_dim]."""
        return self.mapping(z, c, psi=psi, cutoff=cutoff, update_emas=update_emas)

    def synthesize(self, ws, noise_mode="random", fused_modconv=None, update_emas=False):
        """g(ws): [N, num_ws, w_dim] -> (img [N, R, R, C], {"ws": ws})."""
        del noise_mode  # StyleGAN3 has no noise inputs.
        fused = self.fused_modconv_default if fused_modconv is None else fused_modconv
        return self.synthesis(ws, update_emas=update_emas, fused_modconv=fused), {"ws": ws}

    def __call__(self, z, c=None, psi=1.0, cutoff=None, noise_mode="random", update_emas=False,
                 fused_modconv=None):
        ws = self.map(z, c, psi=psi, cutoff=cutoff, update_emas=update_emas)
        return self.synthesize(ws, update_emas=update_emas, fused_modconv=fused_modconv)


# StyleGAN3 configurations (StyleGAN3 Table/§4; spec §1.1 "Config T vs R"), plus tiny `_test` rows.
VARIANTS = {
    "config-t": dict(z_dim=512, w_dim=512, img_resolution=1024, channel_base=32768,
                     channel_max=512, conv_kernel=3, use_radial_filters=False),
    "config-r": dict(z_dim=512, w_dim=512, img_resolution=1024, channel_base=65536,
                     channel_max=1024, conv_kernel=1, use_radial_filters=True),
}
_TINY = dict(z_dim=32, w_dim=32, img_resolution=32, channel_base=1024, channel_max=32)
VARIANTS.update({f"{k}_test": dict(v, **_TINY) for k, v in list(VARIANTS.items())})


def generator(variant: str, c_dim: int = 0, **overrides) -> Generator:
    """Generator of a VARIANTS row; keyword overrides win (e.g. img_resolution=256)."""
    if variant not in VARIANTS:
        raise ValueError(f"stylegan3: unknown variant {variant!r}; expected {sorted(VARIANTS)}")
    return Generator(**{**VARIANTS[variant], "c_dim": c_dim, **overrides})
