"""StyleGAN2 / StyleGAN3 training recipe (spec stylegan2_and_progan.md A8; stylegan_xl_and_t.md
§1.1; code: NVlabs/stylegan3 `training/loss.py` StyleGAN2Loss and `training_loop.py`).

Non-saturating logistic loss; R1 on reals (γ per preset) and path-length regularisation on G,
both lazy (separate phases every `d_reg_interval` / `g_reg_interval` steps, the term multiplied
by the interval, Adam's lr and betas rescaled by c = k/(k+1)); style mixing (p = 0.9, one
crossover index per batch); EMA of G with a half-life in images and optional ramp-up; w_avg (and
StyleGAN3's magnitude EMAs) updated by the G forward of the D main step (update_emas=True, as
the official code does); StyleGAN3 config R blurs D's inputs (σ = 10 px fading over 200 kimg).

Phase order per step, as in the official loop: G main, G reg, D main, D reg; then the EMA. The
path-length mean `a` lives in `state.scalars["pl_mean"]`; it is the mean over the global batch
(the official code keeps one per GPU). The image counter is step * batch_size (resumes exactly).
Training runs the modulated convs unfused, as the official train.py does ('inference_only') and
so that the batch can be sharded; config.model.fused_modconv="true" runs them fused in training
only when the batch is not sharded (`train_fused_modconv`). Sampling, eval and the tools use the
model default, config.model.fused_modconv ("auto": `use_fused` of ops/modulated_conv2d.py).
D's R1 phase reuses the D-main phase's reals (official: one real batch per iteration, for
every phase).

Configs A-D grow progressively (spec A6 [code]; config.train.phase_kimg > 0): one recipe per
resolution (`GrowStage`: the minibatch and lr tables), run as trainer stages through
`growing.staged` (Adam reset at every phase start); α and the image counter live in
`state.scalars` ("alpha", "images_seen"). Reals are average-pooled to the stage (on the device)
and blended during fade-in; R1 is scaled by (res/R)^2 and the path-length y is drawn at the stage
side, both as the official code's full-size (nearest-upsampled) images give.

Augmentation (StyleGAN2-ADA; config.augment = "none" | "fixed" | "ada"): the `bgc` pipeline of
gan_zoo/augment.py on every D input, reals and fakes, after the blur (official run_D), with
strength p: train.augment_p ("fixed"), or ("ada") `state.scalars["ada_p"]`, from 0, moved every
train.ada_interval steps by augment.ada_adjust from the signs of D's real logits of the D-main
and R1 phases since the last move (`ada_signs`, `ada_count`; official Loss/signs/real).
"""

import dataclasses
import functools
import logging
from typing import Optional

import jax
import jax.numpy as jnp
import optax

from gan_zoo import augment, losses, ops
from gan_zoo.models import stylegan2, stylegan3
from gan_zoo.models.stylegan2_layers import EMA
from gan_zoo.nn import precision
from gan_zoo.recipes import ada, growing
from gan_zoo.recipes.base import GANState, Phase, Recipe, data_devices

_MODEL_KEYS = ("z_dim", "w_dim", "mapping_layers", "channel_base", "channel_max")
_FUSED = {"auto": "auto", "none": "auto", "true": True, "fused": True, "1": True,
          "false": False, "unfused": False, "0": False}
log = logging.getLogger("gan_zoo.recipes.stylegan")


def fused_modconv_setting(config):
    """config.model.fused_modconv (a bool, None, or a string from the command line: "auto",
    "true" / "fused", "false" / "unfused") -> True / False / "auto"."""
    value = config.model.get("fused_modconv", "auto")
    if value is None or isinstance(value, bool):
        return "auto" if value is None else value
    if str(value).lower() not in _FUSED:
        raise ValueError(f"config.model.fused_modconv: expected one of {sorted(_FUSED)} or a "
                         f"bool, got {value!r}")
    return _FUSED[str(value).lower()]


def train_fused_modconv(config) -> bool:
    """Modulated conv execution in training: "auto" -> unfused (official train.py
    'inference_only'; measured slower on CPU too); True -> fused on one 'data' device only (the
    grouped conv's groups are the batch, which pjit cannot split: a sharded batch runs unfused,
    with a warning); False -> unfused."""
    setting = fused_modconv_setting(config)
    if setting is True and data_devices(config) > 1:
        log.warning("config.model.fused_modconv=true: the batch is sharded over %d devices, "
                    "training runs the modulated convs unfused", data_devices(config))
        return False
    return setting is True


def lazy_ratio(interval: int) -> float:
    """mb_ratio c = k / (k + 1) of lazy regularisation (StyleGAN2 §3.1); 1 when not lazy (k = 0)."""
    return interval / (interval + 1) if interval > 0 else 1.0


def lazy_adam(lr: float, b1: float, b2: float, eps: float, interval: int):
    """Adam with the lazy-regularisation rescaling (spec A8.3): lr·c, β1^c, β2^c, c = k/(k+1).

    Returns (optax transformation, the effective lr)."""
    c = lazy_ratio(interval)
    return optax.adam(lr * c, b1=b1 ** c, b2=b2 ** c, eps=eps), lr * c


def ema_beta(step, batch: int, ema_kimg: float, ema_rampup: float):
    """G EMA decay 0.5 ** (batch / ema_nimg), half-life ema_kimg·1000 images (spec A8.7); with
    ramp-up, ema_nimg = min(ema_nimg, cur_nimg · ema_rampup) (stylegan3 training_loop.py)."""
    cur_nimg = jnp.asarray(step, jnp.float32) * batch
    ema_nimg = jnp.float32(ema_kimg * 1000.0)
    if ema_rampup > 0:
        ema_nimg = jnp.minimum(ema_nimg, cur_nimg * ema_rampup)
    return jnp.power(0.5, batch / jnp.maximum(ema_nimg, 1e-8))


def blur_sigma_at(step, batch: int, blur_sigma: float, blur_fade_kimg: float):
    """D-input blur σ = max(1 - cur_nimg / (fade_kimg·1000), 0) · σ_0 (StyleGAN3 config R)."""
    if blur_sigma <= 0 or blur_fade_kimg <= 0:
        return jnp.float32(0.0)
    cur_nimg = jnp.asarray(step, jnp.float32) * batch
    return jnp.maximum(1.0 - cur_nimg / (blur_fade_kimg * 1000.0), 0.0) * blur_sigma


def blur_images(img, sigma, max_sigma: float):
    """Gaussian-like blur of D's input, official run_D: taps 2^(-(x/σ)^2) for |x| <= floor(3σ),
    normalised, separable, zero padding. The filter has the static length of max_sigma (taps past
    floor(3σ) are zero), so σ may be traced; σ < 1/3 leaves the image unchanged."""
    half = int(max_sigma * 3)
    x = jnp.arange(-half, half + 1, dtype=jnp.float32)
    s = jnp.maximum(sigma, 1e-8)
    f = jnp.where(jnp.abs(x) <= jnp.floor(sigma * 3), jnp.exp2(-jnp.square(x / s)), 0.0)
    return ops.filter2d(img, f / jnp.sum(f), impl="xla")


def mix_styles(ws, ws2, cutoff):
    """Style mixing (spec A8.5): ws[:, :cutoff] from the first latent, ws[:, cutoff:] from ws2."""
    slot = jnp.arange(ws.shape[1])[None, :, None]  # [1, num_ws, 1]
    return jnp.where(slot < cutoff, ws, ws2)


def make_networks(config, family: str):
    """(G, D) for config.model: a VARIANTS row, resolution, labels and non-zero size overrides."""
    m, t = config.model, config.train
    over = {k: m[k] for k in _MODEL_KEYS if m.get(k, 0)}
    c_dim = m.n_classes
    d_over = {k: v for k, v in over.items() if k in ("channel_base", "channel_max")}
    d_over.update({k[2:]: m[k] for k in ("d_channel_base", "d_channel_max") if m.get(k, 0)})
    d_kw = dict(img_resolution=m.resolution, mbstd_group_size=m.mbstd_group_size, **d_over)
    # Mixed precision of G's synthesis and D (official num_fp16_res; 'auto': bf16 on GPU/TPU).
    prec = dict(num_fp16_res=m.get("num_fp16_res", 0), fp16_dtype=m.get("fp16_dtype", "auto"))
    over.update(prec)
    d_kw.update(prec)
    if family == "stylegan2":
        G = stylegan2.generator(m.variant, c_dim, img_resolution=m.resolution,
                                fused_modconv_default=fused_modconv_setting(config), **over)
        return G, stylegan2.discriminator(m.variant, c_dim, **d_kw)
    # StyleGAN3: magnitude EMA β = 0.5 ** (batch / 20k) (train.py); D is the StyleGAN2 resnet D.
    beta = 0.5 ** (t.batch_size / (t.magnitude_ema_kimg * 1000.0))
    over.update({k: m[k] for k in ("num_layers",) if m.get(k, 0)})  # StyleGAN3-only size key
    G = stylegan3.generator(m.variant, c_dim, img_resolution=m.resolution,
                            magnitude_ema_beta=beta,
                            fused_modconv_default=fused_modconv_setting(config), **over)
    return G, stylegan2.Discriminator(c_dim, architecture="resnet", **d_kw)


def _one_hot(labels, n_classes: int):
    return jax.nn.one_hot(labels, n_classes, dtype=jnp.float32) if n_classes else None


@dataclasses.dataclass(frozen=True)
class GrowStage:
    """One resolution of a progressively grown run (configs A-D, spec A6 [code])."""

    res: int  # static stage resolution: G's output and D's input side
    batch: int  # real images per step (minibatch table)
    lr: float  # Adam lr of G and D before the lazy rescaling (lr table)
    growth: growing.Growth  # the schedule (α after each step)


class _Nets:
    """G and D applied with the recipe's conventions (collections in and out, random noise).

    With a GrowStage, G and D run at the stage resolution with the state's fade-in α (`alpha`
    arguments; None when not growing)."""

    def __init__(self, G, D, config, stage: Optional[GrowStage] = None):
        self.G, self.D, t = G, D, config.train
        self.n_classes = config.model.n_classes
        self.batch = t.batch_size if stage is None else stage.batch
        self.mixing_prob, self.t, self.stage = t.style_mixing_prob, t, stage
        self.res = G.img_resolution if stage is None else stage.res  # side of G's output
        self.fused_modconv = train_fused_modconv(config)  # modconv execution in training
        self.augment, self.augment_p = ada.augment_setting(config)

    def aug(self, state, key, tag: int):
        """(key, p) of D input `tag` (0 G-main fakes, 1 D fakes, 2 D reals, 3 R1 reals), or None
        without augmentation."""
        if self.augment == "none":
            return None
        p = state.scalars["ada_p"] if self.augment == "ada" else self.augment_p
        return jax.random.fold_in(key, ada.AUG_TAG + tag), p

    def grow_kw(self, alpha) -> dict:
        """G / D keyword arguments of the stage: res (static) and the fade-in α."""
        return {} if self.stage is None else {"res": self.res, "alpha": alpha}

    def reals(self, batch, alpha):
        """Real images; growing: blended at the stage resolution (official process_reals)."""
        x = batch["image"].astype(jnp.float32)
        return x if self.stage is None else growing.prepare_reals(x, self.res, alpha)

    @property
    def r1_scale(self) -> float:
        """1; growing: (res / R)^2. The official code feeds D full-size reals, nearest-upsampled
        from the stage resolution, so its R1 gradient is the stage one spread over (R/res)^2
        pixels at 1/(R/res)^2 of the magnitude: ||grad||^2 scales by (res / R)^2."""
        return 1.0 if self.stage is None else (self.res / self.G.img_resolution) ** 2

    def map(self, params, cols, z, c, update_emas):
        """f(z, c) -> (ws, cols); w_avg moves only with update_emas."""
        variables = {"params": params, **cols}
        if not update_emas:
            return self.G.apply(variables, z, c, method="map"), cols
        ws, new = self.G.apply(variables, z, c, update_emas=True, method="map", mutable=[EMA])
        return ws, {**cols, **new}

    def synthesize(self, params, cols, ws, key, update_emas=False, alpha=None):
        """g(ws) with random noise -> (img [N, R, R, C] float32, cols)."""
        variables = {"params": params, **cols}
        kw = dict(noise_mode="random", fused_modconv=self.fused_modconv, method="synthesize",
                  rngs={"noise": key}, **self.grow_kw(alpha))
        if not update_emas:
            return self.G.apply(variables, ws, **kw)[0].astype(jnp.float32), cols
        (img, _), new = self.G.apply(variables, ws, update_emas=True, mutable=[EMA], **kw)
        return img.astype(jnp.float32), {**cols, **new}

    def run_ws(self, params, cols, key, n: int, update_emas=False):
        """z, labels, mapping and style mixing -> (ws [N, num_ws, w_dim], c, cols)."""
        kz, kz2, kc, kp, ky = jax.random.split(key, 5)
        z = jax.random.normal(kz, (n, self.G.z_dim), jnp.float32)
        c = _one_hot(jax.random.randint(ky, (n,), 0, max(self.n_classes, 1)), self.n_classes)
        ws, cols = self.map(params, cols, z, c, update_emas)
        if self.mixing_prob > 0:
            # Official: cutoff in [1, cur_layers), cur_layers = the stage's layers when growing.
            num_ws = ws.shape[1] if self.stage is None else stylegan2.num_ws(self.res)
            cutoff = jax.random.randint(kc, (), 1, num_ws)
            cutoff = jnp.where(jax.random.uniform(kp) < self.mixing_prob, cutoff, num_ws)
            ws2, _ = self.map(params, cols, jax.random.normal(kz2, z.shape), c, False)
            ws = mix_styles(ws, ws2, cutoff)
        return ws, c, cols

    def run_g(self, params, cols, key, n: int, update_emas=False, alpha=None):
        """Official run_G: mapping with style mixing, then synthesis -> (img, ws, c, cols)."""
        k_ws, k_noise = jax.random.split(key)
        ws, c, cols = self.run_ws(params, cols, k_ws, n, update_emas)
        img, cols = self.synthesize(params, cols, ws, k_noise, update_emas, alpha)
        return img, ws, c, cols

    def run_d(self, params, cols, img, c, step, alpha=None, aug=None):
        """Official run_D: optional blur (config R), augmentation (aug = (key, p) from `aug`),
        then D -> logits [N] float32."""
        t = self.t
        if t.blur_sigma > 0:
            sigma = blur_sigma_at(step, self.batch, t.blur_sigma, t.blur_fade_kimg)
            img = blur_images(img, sigma, t.blur_sigma)
        if aug is not None:
            img = augment.ada_augment(aug[0], img, aug[1], "bgc")
        logits, _ = self.D.apply({"params": params, **cols}, img, c, **self.grow_kw(alpha))
        return logits.astype(jnp.float32)


def _alpha(state):
    """The fade-in α of a growing run (None otherwise)."""
    return state.scalars.get("alpha")


def _g_main(nets, n, g_params, state, batch, key):
    """G main: softplus(-D(G(z))) = -log sigmoid(D(G(z))) (spec A8.1)."""
    del batch  # G steps use no real data
    alpha = _alpha(state)
    img, _, c, _ = nets.run_g(g_params, state.collections["g"], key, n, alpha=alpha)
    logits = nets.run_d(state.params["d"], state.collections["d"], img, c, state.step, alpha,
                        nets.aug(state, key, 0))
    loss = losses.nonsaturating_g(logits)
    return loss, (state.collections, {"loss": loss, "logit_fake": jnp.mean(logits)})


def _pl_term(nets, n, g_params, state, key):
    """Path-length penalty on n latents (official Gpl) -> (penalty, new a, lengths)."""
    k_ws, k_noise, k_y = jax.random.split(key, 3)
    cols, G = state.collections["g"], nets.G
    ws, _, _ = nets.run_ws(g_params, cols, k_ws, n)
    # y ~ N(0, I) / sqrt(H W) (official); the noise inputs are fixed by k_noise inside the VJP.
    # Growing: H = W = the stage side; the official full-size y on the nearest-upsampled image
    # sums to the same distribution, N(0, 1) / res per stage pixel.
    r = nets.res
    noise = jax.random.normal(k_y, (n, r, r, G.img_channels), jnp.float32) / r
    synth = lambda w: nets.synthesize(g_params, cols, w, k_noise, alpha=_alpha(state))[0]  # noqa: E731
    lengths = losses.path_lengths(synth, ws, noise)
    penalty, a = losses.path_length_penalty(lengths, state.scalars["pl_mean"], nets.t.pl_decay)
    return penalty, a, lengths


def _g_reg(nets, n, gain, g_params, state, batch, key):
    """G reg (lazy): gain · pl_weight · E (||J_w^T y|| - a)^2, gain = the lazy interval."""
    del batch
    penalty, a, lengths = _pl_term(nets, n, g_params, state, key)
    loss = penalty * nets.t.pl_weight * gain
    metrics = {"loss": loss, "pl_penalty": penalty, "pl_length": jnp.mean(lengths), "pl_mean": a}
    return loss, (state.collections, metrics, {**state.scalars, "pl_mean": a})


def _real_d(nets, d_params, state, batch, key, tag: int):
    """(D as a function of the real images, the reals): the labels, the blur/fade input
    (nets.reals) and the augmentation `tag` of official run_D, fixed."""
    c, alpha = _one_hot(batch["label"], nets.n_classes), _alpha(state)
    aug = nets.aug(state, key, tag)
    d_fn = lambda x: nets.run_d(d_params, state.collections["d"], x, c, state.step, alpha, aug)  # noqa: E731
    return d_fn, nets.reals(batch, alpha)


def _r1_term(nets, d_params, state, batch, key, tag: int = 3):
    """R1 = 0.5 E ||grad_x D(x)||^2 on reals (through the blur and the augmentation `tag`, as
    official run_D) -> (R1, the real logits of the same forward, float32 [N])."""
    logits, r1 = losses.r1_with_logits(*_real_d(nets, d_params, state, batch, key, tag))
    return r1 * nets.r1_scale, logits


def _d_main(nets, r1_gamma_now, d_params, state, batch, key):
    """D main: softplus(D(G(z))) + softplus(-D(x)) (spec A8.1); G's forward updates w_avg and
    the magnitude EMAs (official Dmain: update_emas=True). r1_gamma_now > 0: non-lazy R1 too."""
    n, alpha = batch["image"].shape[0], _alpha(state)
    fake, _, c_fake, g_cols = nets.run_g(state.params["g"], state.collections["g"], key, n,
                                         update_emas=True, alpha=alpha)
    fake = jax.lax.stop_gradient(fake)
    logits_fake = nets.run_d(d_params, state.collections["d"], fake, c_fake, state.step, alpha,
                             nets.aug(state, key, 1))
    if r1_gamma_now > 0:  # official Dboth: one D forward of the augmented reals for both terms
        r1, logits_real = _r1_term(nets, d_params, state, batch, key, tag=2)
    else:
        d_real, real = _real_d(nets, d_params, state, batch, key, tag=2)
        logits_real = d_real(real)
    loss, (loss_real, loss_fake) = losses.nonsaturating_d(logits_real, logits_fake)
    metrics = {"loss_real": loss_real, "loss_fake": loss_fake,
               "logit_real": jnp.mean(logits_real), "logit_fake": jnp.mean(logits_fake)}
    if r1_gamma_now > 0:
        loss, metrics["r1"] = loss + r1_gamma_now * r1, r1
    metrics["loss"] = loss
    cols = {**state.collections, "g": g_cols}
    if nets.augment == "none":
        return loss, (cols, metrics)
    metrics.update(augment_p=jnp.asarray(nets.aug(state, key, 2)[1], jnp.float32),
                   sign_real=jnp.mean(jnp.sign(logits_real)))
    scalars = state.scalars
    if nets.augment == "ada":
        scalars = ada.count_signs(scalars, logits_real)
    return loss, (cols, metrics, scalars)


def _d_reg(nets, gain, d_params, state, batch, key):
    """D reg (lazy): gain · γ · R1, gain = the lazy interval (official Dreg; with ADA its real
    logits' signs count too)."""
    r1, logits = _r1_term(nets, d_params, state, batch, key)
    loss = r1 * nets.t.r1_gamma * gain
    metrics = {"loss": loss, "r1": r1}
    if nets.augment != "ada":
        return loss, (state.collections, metrics)
    return loss, (state.collections, metrics, ada.count_signs(state.scalars, logits))


def _phases(nets, t, micro: int) -> tuple:
    """G main, [G reg], D main, [D reg] (official order); a zero interval folds the regulariser
    into the main phase (configs A-B: R1 every step), a zero weight drops it."""
    g_lazy, d_lazy = t.g_reg_interval > 0, t.d_reg_interval > 0
    if t.pl_weight > 0 and not g_lazy:
        raise ValueError("train.g_reg_interval: path length needs a lazy interval > 0")
    phases = [Phase("g", functools.partial(_g_main, nets, micro), update="g", uses_real=False)]
    if t.pl_weight > 0:
        n_pl = max(micro // t.pl_batch_shrink, 1)
        phases.append(Phase("g_pl", functools.partial(_g_reg, nets, n_pl, t.g_reg_interval),
                            update="g", every=t.g_reg_interval, uses_real=False))
    r1_now = t.r1_gamma if not d_lazy else 0.0
    phases.append(Phase("d", functools.partial(_d_main, nets, r1_now), update="d"))
    if t.r1_gamma > 0 and d_lazy:
        phases.append(Phase("d_r1", functools.partial(_d_reg, nets, t.d_reg_interval),
                            update="d", every=t.d_reg_interval, reals_from="d"))
    return tuple(phases)


def growth_from_config(config) -> Optional[growing.Growth]:
    """The growing schedule of configs A-D (spec A6 [code]: official `training_schedule`), or
    None when config.train.phase_kimg is 0. Minibatch per resolution: train.batch_sizes, else
    train.batch_size."""
    t = config.train
    if not t.get("phase_kimg", 0):
        return None
    sizes = {int(k): int(v) for k, v in dict(t.batch_sizes).items()}
    return growing.Growth(int(config.model.resolution), int(round(t.phase_kimg * 1000)), sizes,
                          start_resolution=int(t.start_resolution),
                          default_batch=int(t.batch_size))


def grow_stage(config, growth: growing.Growth, res: int) -> GrowStage:
    """Stage `res` of the schedule: its minibatch and the lr table's value (train.lr_by_res,
    else train.lr_g; official G_lrate_dict = D_lrate_dict)."""
    lrs = {int(k): float(v) for k, v in dict(config.train.lr_by_res).items()}
    return GrowStage(res, growth.batch_size(res),
                     growing.by_resolution(lrs, res, float(config.train.lr_g)), growth)


def make_recipe(config, networks=None) -> Recipe:
    """The StyleGAN2/3 recipe for `config` (config.recipe names the family); a staged recipe
    (one stage per growing phase) when config.train.phase_kimg > 0 (configs A-D). networks:
    optional (G, D) modules (tests); default: `make_networks(config, config.recipe)`."""
    family = config.recipe
    if family not in ("stylegan2", "stylegan3"):
        raise ValueError(f"config.recipe: expected 'stylegan2' or 'stylegan3', got {family!r}")
    G, D = networks if networks is not None else make_networks(config, family)
    growth = growth_from_config(config)
    if growth is None:
        return _make_recipe(config, G, D)
    _check_growing(config, G, D)
    recipes = {r: _make_recipe(config, G, D, grow_stage(config, growth, r))
               for r in growth.resolutions}
    return growing.staged(recipes, growth, int(round(config.train.total_kimg * 1000)),
                          reset_opt=config.train.reset_opt_at_stage)


def _check_growing(config, G, D):
    t = config.train
    if not (getattr(G, "progressive", False) and getattr(D, "progressive", False)):
        raise ValueError(f"train.phase_kimg={t.phase_kimg}: progressive growing needs a "
                         f"progressive G and D (config.model.variant config-a ... config-d), "
                         f"got variant {config.model.variant!r}")
    if t.num_steps or t.total_kimg <= 0:
        raise ValueError(f"train.num_steps={t.num_steps}, train.total_kimg={t.total_kimg}: a "
                         f"growing run (train.phase_kimg > 0) is measured by total_kimg > 0 "
                         f"only; set num_steps=0")


def _make_recipe(config, G, D, stage: Optional[GrowStage] = None) -> Recipe:
    """The recipe of one run (stage None) or of one growing stage (its resolution, batch, lr)."""
    m, t = config.model, config.train
    nets = _Nets(G, D, config, stage)
    g_lazy = t.g_reg_interval if t.pl_weight > 0 else 0
    d_lazy = t.d_reg_interval if t.r1_gamma > 0 else 0
    lr_g, lr_d = (t.lr_g, t.lr_d) if stage is None else (stage.lr, stage.lr)
    tx_g, lr_g = lazy_adam(lr_g, t.b1, t.b2, t.adam_eps, g_lazy)
    tx_d, lr_d = lazy_adam(lr_d, t.b1, t.b2, t.adam_eps, d_lazy)
    optimizers = {"g": tx_g, "d": tx_d}

    def init_state(rng, config) -> GANState:
        """Every layer of both nets at the final resolution (growing: all stages), Adam, EMA."""
        del config  # everything needed is closed over
        kg, kd, krun = jax.random.split(rng, 3)
        z = jnp.zeros((2, G.z_dim), jnp.float32)
        c = _one_hot(jnp.zeros((2,), jnp.int32), m.n_classes)
        x = jnp.zeros((2, m.resolution, m.resolution, 3), jnp.float32)
        g_vars = dict(G.init({"params": kg}, z, c, noise_mode="const"))
        d_vars = dict(D.init({"params": kd}, x, c))
        params = {"g": g_vars.pop("params"), "d": d_vars.pop("params")}
        scalars = {"pl_mean": jnp.zeros((), jnp.float32)}
        if stage is not None:
            scalars.update(growing.initial_scalars())
        if nets.augment == "ada":
            scalars.update(ada.ada_scalars())
        return GANState(
            step=jnp.zeros((), jnp.int32), rng=krun, params=params,
            opt_state={k: optimizers[k].init(params[k]) for k in params},
            ema_params=jax.tree.map(jnp.copy, params["g"]),
            collections={"g": g_vars, "d": d_vars}, scalars=scalars)

    def sample_fn(state, key, labels, truncation, collections):
        """EMA-G samples, const noise, truncation ψ = truncation (<= 0: none) -> [N, H, W, 3]
        (growing: the stage's side and α)."""
        z = jax.random.normal(key, (labels.shape[0], G.z_dim), jnp.float32)
        psi = float(truncation) if truncation is not None and truncation > 0 else 1.0
        images, _ = G.apply({"params": state.ema_params, **collections}, z,
                            _one_hot(labels, m.n_classes), psi=psi, noise_mode="const",
                            **nets.grow_kw(_alpha(state)))
        return images.astype(jnp.float32)

    posts = []
    if stage is not None:  # images_seen += batch, α of the next step
        posts.append(functools.partial(growing.count_images, batch=stage.batch,
                                       growth=stage.growth))
    if nets.augment == "ada":  # p every ada_interval steps (official training_loop)
        posts.append(functools.partial(ada.ada_post_step, batch=nets.batch, interval=t.ada_interval,
                                       target=t.ada_target, ada_kimg=t.ada_kimg))
    post_step = None if not posts else functools.reduce(
        lambda f, g: lambda state: g(f(state)), posts)
    return Recipe(
        init_state=init_state, phases=precision.loss_scaled_phases(
            _phases(nets, t, nets.batch // t.grad_accum),
            precision.resolve_loss_scale(t.get("loss_scale", 0.0), G, D)),
        optimizers=optimizers, sample_fn=sample_fn,
        learning_rates={"g": optax.constant_schedule(lr_g), "d": optax.constant_schedule(lr_d)},
        networks={"g": G, "d": D},
        ema_decay=functools.partial(ema_beta, batch=nets.batch, ema_kimg=t.ema_kimg,
                                    ema_rampup=t.ema_rampup),
        post_step=post_step, n_classes=m.n_classes, dim_z=G.z_dim)
