"""StyleGAN-T training recipe. Sauer, Karras, Laine, Geiger, Aila 2023 §3-§4 (spec
stylegan_xl_and_t.md §2.3-§2.6, decisions of §6; code: autonomousvision/stylegan-t
`training/loss.py` ProjectedGANLoss, `training/training_loop.py`, `train.py`).

Per train step, as the official loop: G main, then D main (each on its own real sub-batch: the
G step's captions condition its fakes), then the G EMA.
- Text: captions tokenised on the host -> CLIP text encoder -> L2-normalised c_text (§2.3). G
  reads c from its own copy of the encoder (params["g"]["text"]); D and the CLIP loss read c
  from the original frozen CLIP (state.collections["clip"]).
- Loss: per-token hinge over the 5 D heads (§3.2) + clip_weight · arccos²(c_image · c_text)
  (§3.3 eq. 2; random 64² crops of larger images); no R1, no path length (spectral-norm D).
  train.clip_augment (not in the paper; "" = off): a DiffAugment policy on G's images before
  the guidance tower, for the CPU presets' tiny fitted CLIP, which G otherwise games.
  train.ms_weight (not in the paper; 0 = off): MSGAN's mode-seeking term on G, its batch's
  second half repeating the first half's captions (as the BigGAN recipe's).
  train.mismatch_weight (not in the paper; 0 = off): GAN-CLS's matching-aware D term (Reed et
  al. 2016, as the StyleGAN-XL recipe's): each real under the previous sample's caption (the
  batch rolled by one; the same caption by chance stays a negative) is one more hinge fake.
  The D step logs the D's caption margin on reals and fakes either way.
- D input blur σ0 = 32 fading to 0 over 1000 kimg of the run ([C] train.py, spec §6.16).
- Adam (0, 0.99, 1e-8), lr 0.002 for G and D ([C] train.py); G EMA half-life batch·10/32 kimg
  with ramp-up 0.05 ([C] training_loop defaults).

Stages (§2.6, `schedule`): "primary@16:N,...,text@64:M,primary@128:K,...". A primary stage
trains G's synthesis and mapping (its text encoder frozen) and D. The secondary ("text") stage
trains only G's text encoder (lr 3e-6 [C], CLIP weight 50) with G frozen; D is frozen too
unless train.text_phase_trains_d (the official loop keeps the D phase, the brief and paper
freeze everything but the encoder: decision, default frozen). Later primary stages condition G
on its trained (again frozen) encoder; D and the CLIP loss keep the original one. Every stage
starts a fresh Adam for G (official: each phase is a separate run resumed from G_ema); a higher
resolution grows G (blocks present in both keep their values: the official resume copies
parameters by name) and keeps D, its Adam and SN state.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_zoo import losses
from gan_zoo import losses_stylegan_t as lt
from gan_zoo.models import progan as progan_models
from gan_zoo.models.projected_d import FROZEN_COLLECTION
from gan_zoo.models.stylegan2_layers import EMA
from gan_zoo.recipes import stylegan as sg
from gan_zoo.recipes import stylegan_t_nets as nets_lib
from gan_zoo.recipes.base import (
    GANState,
    Phase,
    Recipe,
    Stage,
    loss_weight,
    mode_seeking_weight,
)

CLIP = "clip"  # state.collections key of the frozen original CLIP's variables
D_MUTABLE = ("spectral_norm",)  # D collections a train-mode forward updates
PRIMARY, TEXT = "primary", "text"


# ----- Stages -----

@dataclasses.dataclass(frozen=True)
class TStage:
    """One stage of the run."""

    phase: str  # "primary" (G + D train) or "text" (only G's text encoder)
    res: int  # G's output side
    start_step: int  # first train step of the stage in this run
    steps: int  # its length

    @property
    def name(self) -> str:
        return f"{self.phase}{self.res}"


def parse_schedule(text: str, resolution: int) -> tuple:
    """"primary@16:118000,text@64:20000" -> TStages. The last stage must be at
    config.model.resolution; ValueError naming train.schedule otherwise."""
    plan, step = [], 0
    for item in filter(None, (s.strip() for s in str(text).split(","))):
        try:
            head, n = item.split(":")
            phase, res = head.split("@")
            stage = TStage(phase.strip(), int(res), step, int(n))
        except ValueError:
            raise ValueError(f"config.train.schedule: bad stage {item!r}; expected "
                             f"'primary@RES:STEPS' or 'text@RES:STEPS'") from None
        if stage.phase not in (PRIMARY, TEXT) or stage.steps <= 0 or stage.res < 8:
            raise ValueError(f"config.train.schedule: bad stage {item!r} (phase primary|text, "
                             f"res >= 8, steps > 0)")
        if plan and stage.res < plan[-1].res:
            raise ValueError(f"config.train.schedule: {item!r} shrinks G ({plan[-1].res}^2 "
                             f"before it)")
        plan.append(stage)
        step += stage.steps
    if not plan or plan[-1].res != resolution:
        raise ValueError(f"config.train.schedule={text!r}: must end at config.model.resolution"
                         f"={resolution}")
    if len({s.name for s in plan}) != len(plan):
        raise ValueError(f"config.train.schedule={text!r}: a stage appears twice")
    return tuple(plan)


def stage_at(plan: tuple, batch: int, step: int) -> Stage:
    """The trainer Stage of train step `step` (host ints; the last stage lasts to the end)."""
    s = next((s for s in plan if step < s.start_step + s.steps), plan[-1])
    return Stage(s.name, (s.phase, s.res), batch, s.res)


# ----- Networks with the recipe's conventions -----

class _Nets:
    """The stage's G (with its text encoder), D, the frozen CLIP; the loss settings."""

    def __init__(self, TG, D, clip_model, config, stage: TStage):
        self.TG, self.D, self.clip, self.stage, self.t = TG, D, clip_model, stage, config.train
        self.batch = config.train.batch_size
        self.fused_modconv = sg.train_fused_modconv(config)
        self.clip_weight = self.t.clip_weight_text if stage.phase == TEXT else self.t.clip_weight
        self.clip_augment = nets_lib.clip_augment_policy(config.train)
        self.ms_weight = mode_seeking_weight(config.train)
        self.mismatch_weight = loss_weight(config.train, "mismatch_weight")

    def encode_frozen(self, cols, tokens):
        """c_text of the original frozen CLIP (D's and the CLIP loss's conditioning)."""
        frozen = jax.lax.stop_gradient(cols[CLIP])
        c = self.clip.apply(frozen, tokens, normalize=True, method="encode_text")
        return c.astype(jnp.float32)

    def run_g(self, g_params, cols, key, tokens, update_emas=False):
        """z ~ N(0, I), c = G's encoder(tokens) -> (img, z, updated G collections). Only the
        stage's trainable part is differentiated (text: the encoder; primary: G)."""
        sg_ = jax.lax.stop_gradient
        g_params = ({"G": sg_(g_params["G"]), "text": g_params["text"]}
                    if self.stage.phase == TEXT else {"G": g_params["G"],
                                                      "text": sg_(g_params["text"])})
        variables = {"params": g_params, **cols}
        c = self.TG.apply(variables, tokens, method="encode")
        k_z, k_noise = jax.random.split(key)
        z = jax.random.normal(k_z, (tokens.shape[0], self.TG.G.z_dim), jnp.float32)
        kw = dict(fused_modconv=self.fused_modconv, rngs={"noise": k_noise})
        if not update_emas:
            img, _ = self.TG.apply(variables, z, c, **kw)
            return img.astype(jnp.float32), z, cols
        (img, _), new = self.TG.apply(variables, z, c, update_emas=True, mutable=[EMA], **kw)
        return img.astype(jnp.float32), z, {**cols, **new}

    def run_d(self, d_params, cols, img, c, key, step, c_alt=None):
        """Blur (fading σ), then D in train mode -> (per-token logits [N, 5 L], the same
        tokens' logits under c_alt (None without), D collections)."""
        t = self.t
        if t.blur_sigma > 0:
            sigma = sg.blur_sigma_at(step, self.batch, t.blur_sigma, t.blur_fade_kimg)
            img = sg.blur_images(img, sigma, t.blur_sigma)
        (logits, aux), new = self.D.apply({"params": d_params, **cols}, img, c, train=True,
                                          key=key, c_alt=c_alt, mutable=list(D_MUTABLE))
        alt = None if c_alt is None else aux["logits_alt"].astype(jnp.float32)
        return logits.astype(jnp.float32), alt, {**cols, **new}

    def reals(self, batch):
        """Reals average-pooled to the stage resolution (the data comes at the final one)."""
        return progan_models.downscale_to(batch["image"].astype(jnp.float32), self.stage.res)


# ----- Phases -----

def _g_main(nets: _Nets, g_params, state, batch, key):
    """G main: mean_tokens(−D(G(z, c))) + w · L_CLIP(G(z, c), c_frozen) (§3.2, §3.3)
    [+ ms_weight · mode seeking over caption pairs]."""
    k_g, k_d, k_clip = jax.random.split(key, 3)
    cols = state.collections
    tokens = batch["tokens"]
    if nets.ms_weight:  # pairs under one caption: the second half repeats the first half's
        tokens = losses.repeat_first_half(tokens)
    c = nets.encode_frozen(cols, tokens)
    img, z, _ = nets.run_g(g_params, cols["g"], k_g, tokens)
    logits, _, d_cols = nets.run_d(state.params["d"], cols["d"], img, c, k_d, state.step)
    adv = lt.hinge_g_per_token(logits)
    metrics = {"loss_adv": adv, "logit_fake": jnp.mean(logits)}
    loss = adv
    if nets.clip_weight > 0:
        clip_loss = lt.clip_guidance_loss(nets.clip, cols[CLIP], k_clip, img, c,
                                          augment=nets.clip_augment)
        loss, metrics["clip_loss"] = loss + nets.clip_weight * clip_loss, clip_loss
    if nets.ms_weight:
        metrics["mode_seeking"] = losses.mode_seeking(img, z)
        loss = loss + nets.ms_weight * metrics["mode_seeking"]
    metrics["loss"] = loss
    return loss, ({**cols, "d": d_cols}, metrics)


def _d_main(nets: _Nets, d_params, state, batch, key):
    """D main: mean relu(1 + D(G(z))) + mean relu(1 − D(x)) per token, fake then real (official
    order) [+ mismatch_weight · mean relu(1 + D(x, c_other))]; G's forward updates its f̄ EMA
    (official run_G in the D phase, update_emas). Both passes also score their tokens under
    the rolled captions (projection only) for the logged caption margins."""
    k_g, k_fake, k_real = jax.random.split(key, 3)
    cols = state.collections
    tokens = batch["tokens"]
    c = nets.encode_frozen(cols, tokens)
    c_other = jnp.roll(c, 1, axis=0)  # sample i scored under sample i - 1's caption
    fake, _, g_cols = nets.run_g(state.params["g"], cols["g"], k_g, tokens, update_emas=True)
    logits_fake, alt_fake, d_cols = nets.run_d(d_params, cols["d"], jax.lax.stop_gradient(fake),
                                               c, k_fake, state.step, c_other)
    logits_real, alt_real, d_cols = nets.run_d(d_params, d_cols, nets.reals(batch), c, k_real,
                                               state.step, c_other)
    loss, (loss_real, loss_fake) = lt.hinge_d_per_token(logits_real, logits_fake)
    metrics = {"loss_real": loss_real, "loss_fake": loss_fake,
               "logit_real": jnp.mean(logits_real), "logit_fake": jnp.mean(logits_fake)}
    for name, own, alt in (("real", logits_real, alt_real), ("fake", logits_fake, alt_fake)):
        metrics[f"margin_{name}"], metrics[f"pairwise_{name}"] = lt.caption_margin(own, alt)
    if nets.mismatch_weight > 0:
        metrics["loss_mismatch"] = losses.hinge_d_fake(alt_real)
        loss = loss + nets.mismatch_weight * metrics["loss_mismatch"]
    metrics["loss"] = loss
    return loss, ({**cols, "g": g_cols, "d": d_cols}, metrics)


def _phases(nets: _Nets, t) -> tuple:
    phases = [Phase("g", functools.partial(_g_main, nets), update="g")]
    if nets.stage.phase == PRIMARY or t.text_phase_trains_d:
        phases.append(Phase("d", functools.partial(_d_main, nets), update="d"))
    return tuple(phases)


# ----- One stage's recipe -----

def _adam(t, lr):
    return optax.adam(lr, b1=t.b1, b2=t.b2, eps=t.adam_eps)


def g_optimizer(t, phase: str):
    """Adam on the stage's trainable part of params["g"] ({"G", "text"}); the rest set_to_zero
    (no Adam state, never moves). Returns (transformation, lr)."""
    lr = t.lr_text if phase == TEXT else t.lr_g
    train = "text" if phase == TEXT else "G"
    labels = lambda p: {k: ("train" if k == train else "frozen") for k in p}  # noqa: E731
    return optax.multi_transform({"train": _adam(t, lr), "frozen": optax.set_to_zero()},
                                 labels), lr


def grid_tokens(config, context_length: int) -> np.ndarray:
    """The prompts sample_fn draws for integer labels (config.sample.prompts), tokenised."""
    prompts = list(config.sample.prompts)
    if not prompts:
        raise ValueError("config.sample.prompts: need at least one prompt (integer labels of "
                         "sample_fn select prompts)")
    return nets_lib.tokenize(prompts, context_length)


def _text_input(TG, g_params, labels, prompt_tokens):
    """sample_fn's labels -> G's c: int [N] = indices into the grid prompts; int [N, L] =
    tokens; float [N, E] = text embeddings (used as given)."""
    if jnp.issubdtype(labels.dtype, jnp.floating):
        return labels.astype(jnp.float32)
    tokens = jnp.asarray(prompt_tokens)[labels] if labels.ndim == 1 else labels
    return nets_lib.encode_tokens(TG, g_params, tokens)


def init_g(TG, key) -> dict:
    """Fresh variables of a stage's G and its text encoder (params and collections)."""
    tokens = jnp.ones((2, TG.text.context_length), jnp.int32)
    return dict(TG.init({"params": key}, jnp.zeros((2, TG.G.z_dim)), tokens, method="init_all"))


def _init_state(parts, optimizers, rng, config=None) -> GANState:
    del config  # the recipe was built from it
    TG, D, clip_model, res = parts
    kg, kd, kc, krun = jax.random.split(rng, 4)
    side = clip_model.visual.image_size
    clip_vars = clip_model.init(kc, jnp.zeros((1, side, side, 3)),
                                jnp.ones((1, clip_model.text.context_length), jnp.int32))
    g_vars = init_g(TG, kg)
    g_params = dict(g_vars.pop("params"))
    g_params["text"] = clip_vars["params"]["text"]  # G's encoder starts as the frozen one
    c = jnp.zeros((2, TG.G.c_dim), jnp.float32)
    d_init = D.clone(num_devices=1)  # BN grouping: no parameters; any init batch
    d_vars = dict(d_init.init({"params": kd}, jnp.zeros((2, res, res, 3)), c, train=False))
    params = {"g": g_params, "d": d_vars.pop("params")}
    return GANState(step=jnp.zeros((), jnp.int32), rng=krun, params=params,
                    opt_state={k: optimizers[k].init(params[k]) for k in params},
                    ema_params=jax.tree.map(jnp.copy, params["g"]),
                    collections={"g": g_vars, "d": d_vars, CLIP: dict(clip_vars)}, scalars={})


def _stage_recipe(config, TG, D, clip_model, stage: TStage) -> Recipe:
    t = config.train
    nets = _Nets(TG, D, clip_model, config, stage)
    tx_g, lr_g = g_optimizer(t, stage.phase)
    optimizers = {"g": tx_g, "d": _adam(t, t.lr_d)}
    prompt_tokens = grid_tokens(config, clip_model.text.context_length)

    def sample_fn(state, key, labels, truncation, collections):
        """EMA-G samples -> [N, res, res, 3]; labels: grid prompt ids [N], tokens [N, L] or
        embeddings [N, E]; truncation ψ of the z part toward f̄ (<= 0: ψ = 1)."""
        c = _text_input(TG, state.ema_params, labels, prompt_tokens)
        k_z, k_noise = jax.random.split(key)
        z = jax.random.normal(k_z, (c.shape[0], TG.G.z_dim), jnp.float32)
        psi = float(truncation) if truncation is not None and truncation > 0 else 1.0
        img, _ = TG.apply({"params": state.ema_params, **collections}, z, c, psi=psi,
                          rngs={"noise": k_noise})
        return img.astype(jnp.float32)

    ema_kimg = t.ema_kimg if t.ema_kimg > 0 else t.batch_size * 10 / 32  # [C] train.py
    return Recipe(
        init_state=functools.partial(_init_state, (TG, D, clip_model, stage.res), optimizers),
        phases=_phases(nets, t), optimizers=optimizers, sample_fn=sample_fn,
        networks={"g": TG, "d": D},
        learning_rates={"g": optax.constant_schedule(lr_g),
                        "d": optax.constant_schedule(t.lr_d)},
        ema_decay=lambda step: sg.ema_beta(step, t.batch_size, ema_kimg, t.ema_rampup),
        n_classes=len(prompt_tokens), dim_z=TG.G.z_dim,
        load_frozen=functools.partial(_load_frozen, config, D))


def _frozen_clip(config, random_vars):
    """The CLIP variables to use instead of the random init, or None: the weight file's
    (model.clip_weights), else, for random towers, the init fit on the run's captions
    (model.clip_fit_steps > 0: stylegan_t_clipfit, the CPU presets' stand-in)."""
    m = config.model
    if m.get("clip_weights", ""):
        clip_vars = nets_lib.load_clip_variables(config, nets_lib.make_clip(config))
        nets_lib.check_same_shapes(random_vars, clip_vars, "config.model.clip_weights: ")
        return clip_vars
    if m.get("clip_fit_steps", 0) > 0 and m.feature_nets == "random":
        from gan_zoo.recipes import stylegan_t_clipfit  # noqa: PLC0415

        return stylegan_t_clipfit.fit_clip(config, nets_lib.make_clip(config),
                                           jax.device_get(random_vars))[0]
    return None


def check_fit_steps(m) -> None:
    """config.model's random-tower fits: clip_fit_steps and dino_fit_steps are counts >= 0; the
    DINO fit needs the D's DINO random (feature_nets="random", no dino_weights)."""
    for field in ("clip_fit_steps", "dino_fit_steps"):
        v = m.get(field, 0)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"config.model.{field} must be an integer >= 0 (0 = off), got {v!r}")
    if m.get("dino_fit_steps", 0) and (m.feature_nets != "random" or m.get("dino_weights", "")):
        raise ValueError(
            f"config.model.dino_fit_steps={m.dino_fit_steps} fits the random DINO (the CPU "
            f"presets' stand-in for the pretrained one), but the D's DINO comes from weights "
            f"(feature_nets={m.feature_nets!r}, dino_weights={m.get('dino_weights', '')!r}); "
            f"set dino_fit_steps=0")


def _load_frozen(config, D, state):
    """Recipe.load_frozen: CLIP (frozen copy, G's encoder and its EMA) and DINO from the
    config's weight files, or the random towers fit on the captions (CLIP, then DINO against
    it; host-side, after the jitted init); random towers stay otherwise."""
    cols, params, ema = dict(state.collections), dict(state.params), state.ema_params
    clip_vars = _frozen_clip(config, cols[CLIP])
    if clip_vars is not None:
        cols[CLIP] = clip_vars
        text = clip_vars["params"]["text"]
        params["g"] = {**params["g"], "text": jax.tree.map(jnp.copy, text)}
        ema = {**ema, "text": jax.tree.map(jnp.copy, text)}
    dino = _frozen_dino(config, D, cols)
    if dino is not None:
        d = dict(cols["d"])
        d[FROZEN_COLLECTION] = {**d[FROZEN_COLLECTION], "dino": dino}
        cols["d"] = d
    return state.replace(collections=cols, params=params, ema_params=ema)


def _frozen_dino(config, D, cols):
    """The D's DINO variables to use instead of the random init, or None: the weight file's
    (model.dino_weights), else, for random towers, the init fit on the run's captioned images
    against the (fitted) frozen CLIP's text embeddings (model.dino_fit_steps > 0)."""
    m, random_vars = config.model, cols["d"][FROZEN_COLLECTION]["dino"]
    if m.get("dino_weights", ""):
        dino = nets_lib.load_dino_params(config, D)
        nets_lib.check_same_shapes(random_vars, dino, "config.model.dino_weights: ")
        return dino
    if m.get("dino_fit_steps", 0) > 0:  # check_fit_steps: random DINO, no weight file
        from gan_zoo.recipes import stylegan_t_clipfit  # noqa: PLC0415

        return stylegan_t_clipfit.fit_dino(config, D, jax.device_get(random_vars),
                                           nets_lib.make_clip(config),
                                           jax.device_get(cols[CLIP]))[0]
    return None


# ----- Stage transitions -----

def _stage_start(recipes: dict, tx_g: dict, state, stage: Stage):
    """Recipe.stage_start: G (params, EMA, collections) grown to the new stage's resolution by
    path (a fresh block where the new G has one), a fresh Adam for G; D and its Adam kept."""
    TG = recipes[stage.key].networks["g"]
    fresh = dict(jax.jit(functools.partial(init_g, TG))(
        jax.random.fold_in(state.rng, stage.resolution)))
    fresh_params = fresh.pop("params")
    params_g = nets_lib.merge_by_path(state.params["g"], fresh_params)
    ema = nets_lib.merge_by_path(state.ema_params, jax.tree.map(jnp.copy, fresh_params))
    cols_g = nets_lib.merge_by_path(state.collections["g"], fresh)
    return state.replace(params={**state.params, "g": params_g}, ema_params=ema,
                         opt_state={**state.opt_state, "g": tx_g[stage.key].init(params_g)},
                         collections={**state.collections, "g": cols_g})


# ----- The run's recipe -----

def make_recipe(config, networks=None) -> Recipe:
    """The staged StyleGAN-T recipe of `config` (one recipe per stage of train.schedule).
    networks: optional (TextConditionedG at the final resolution, D) for tests."""
    m, t = config.model, config.train
    plan = parse_schedule(t.schedule, m.resolution)
    nets_lib.check_weight_files(config)
    check_fit_steps(m)
    clip_model = nets_lib.make_clip(config)
    if networks is not None:
        TG, D = networks
    else:
        TG = nets_lib.make_generator(config, clip_model, m.resolution)
        D = nets_lib.make_discriminator(config, clip_model, sg.data_devices(config))
    recipes, tx_g = {}, {}
    for s in plan:
        TG_s = TG.clone(G=TG.G.clone(img_resolution=s.res))
        recipes[(s.phase, s.res)] = _stage_recipe(config, TG_s, D, clip_model, s)
        tx_g[(s.phase, s.res)] = recipes[(s.phase, s.res)].optimizers["g"]
    base = recipes[(plan[-1].phase, plan[-1].res)]
    return dataclasses.replace(
        base, stage_fn=functools.partial(stage_at, plan, t.batch_size),
        stage_recipe=recipes.__getitem__, stage_start=functools.partial(_stage_start, recipes,
                                                                         tx_g),
        num_steps=sum(s.steps for s in plan))


# ----- Prompts (for tools: generate --prompt) -----

def encode_prompts(recipe: Recipe, state, prompts, ema: bool = True):
    """Raw prompt strings -> G's text input c [P, E] (L2-normalised) with the run's trained
    text encoder (EMA by default): tokenised on the host, encoded on the device."""
    TG = recipe.networks["g"]
    tokens = nets_lib.tokenize(prompts, TG.text.context_length)
    params = state.ema_params if ema else state.params["g"]
    return nets_lib.encode_tokens(TG, params, tokens)


__all__ = ["encode_prompts", "g_optimizer", "make_recipe", "parse_schedule", "stage_at"]
