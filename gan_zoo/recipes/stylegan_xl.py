"""StyleGAN-XL training recipe. Sauer, Schwarz, Geiger 2022 §3 (spec stylegan_xl_and_t.md §1.2-
§1.7, decisions of §6; code: autonomousvision/stylegan_xl `training/loss.py` ProjectedGANLoss,
`train.py`, the StyleGAN3 `training_loop.py` it runs in).

Per train step, in the official order: G main, [G path length], D main; then the G EMA.
- Loss: the hinge loss of the code (§6.1: not the paper's eq. 1 log form), summed over the 8
  heads of the projected D (`hinge_d_heads`, `hinge_g_heads`; the loss terms are in
  recipes/stylegan_xl_losses.py and importable from here); no R1 (spectral norm only).
- D input blur: σ = 2 px fading linearly to 0 over blur_fade_kimg = 300 kimg (§6.2: the code's
  fade, not the paper's "first 200k images"), on real and fake images; not on the classifier's.
- Path length (weight 2, every 4 G steps, a = EMA 0.01 of the lengths, y / sqrt(HW)): stem
  stage only, from pl_start_kimg = 1000 (§6.3: the code, not the paper's 200k). As the code,
  the penalty is not multiplied by the interval (`loss_Gpl.mean().backward()`, gain unused) and a
  step where it is still off leaves G's Adam untouched (the official loop steps Adam only on
  gradients it received: `skip_zero_grads`).
- Classifier guidance: λ · CE(DeiT-small(G(z, c)), c) in the G loss, only in stages above 32^2.
- Not in the paper (train.mismatch_weight > 0, default 0): the matching-aware D term of GAN-CLS
  (Reed et al. 2016), reals under a wrong label as an extra fake; train.mismatch_fake_weight > 0
  (default 0) the same for G's samples under a wrong label. Every class-conditional D step
  logs the D's class margin on reals and fakes (true vs a wrong label, the same features).
  train.ms_weight > 0 (default 0 = off): MSGAN's mode-seeking term on G (Mao et al. 2019,
  losses.mode_seeking), G's batch in pairs under one label (the second half repeats the first
  half's labels), as the BigGAN and StyleGAN-T recipes.
- Adam (0, 0.99, 1e-8), G lr 0.0025 · 4/5 (β^(4/5)), D lr 0.002 · 16/17 (β^(16/17)): the
  StyleGAN3 loop's lazy rescaling with G_reg_interval 4 and D_reg_interval 16 (D has no
  regulariser, the rescaling stays, spec §1.7). G EMA half-life batch·10/32 kimg, ramp-up 0.05.
- Class-conditional G (labels drawn uniformly), per-class w_avg updated by the D step's G
  forward; the magnitude EMA is never updated (G field update_magnitude_ema=False).

Stages (§3.2): one recipe per resolution (`stage_plan`: per-stage kimg and batch size), all in
one workdir; the official code's cur_nimg restarts with every stage (each is its own run there),
so the blur fade, EMA ramp-up and path-length start count the images of the current stage.
`stage_start` grows G from the ending stage's G_ema (stylegan_xl.grow_variables: mapping,
class embedding, Fourier input and kept layers), freezes them (stem_mask: optax set_to_zero, and
G_ema's copy is pinned to G's), keeps D (params, Adam, BN/SN state) and starts a fresh Adam for
the head. `warm_start` does the same from another run (config.init_from), which then trains
from the final stage only, as the official `--superres --path_stem` run.
"""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import optax

from gan_zoo import losses
from gan_zoo.models import progan as progan_models
from gan_zoo.models import projected_d as pd
from gan_zoo.models import stylegan_xl as xl
from gan_zoo.recipes import stylegan as sg
from gan_zoo.recipes import stylegan_xl_fit as fit_lib
from gan_zoo.recipes import stylegan_xl_nets as nets_lib
from gan_zoo.recipes.base import GANState, Phase, Recipe, Stage, loss_weight, mode_seeking_weight
from gan_zoo.recipes.stylegan_xl_losses import (
    class_margin,
    classifier_guidance,
    d_loss,
    hinge_d_heads,
    hinge_g_heads,
    mean_logit,
    mismatch_d_heads,
)

CLF = "clf"  # state.collections key of the frozen classifier's variables
D_MUTABLE = ("batch_stats", "spectral_norm")  # D collections a train-mode forward updates
FIT_TAG = 0x5F17  # fold_in tag of the feature-net fit's key (config.model.feature_fit_steps)
WRONG_TAG = 0xC1A5  # fold_in tag of the D step's wrong-label key (class margin, mismatch term)


def skip_zero_grads(tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """tx, except that an update whose gradients are all exactly 0 changes nothing (no moment
    decay, no step count): the official loop runs no optimizer step without gradients (the
    delayed path-length phase before pl_start_kimg)."""
    def update(grads, state, params=None):
        updates, new_state = tx.update(grads, state, params)
        skip = optax.global_norm(grads) == 0
        keep = lambda old, new: jnp.where(skip, old, new)  # noqa: E731
        return (jax.tree.map(lambda u: jnp.where(skip, jnp.zeros_like(u), u), updates),
                jax.tree.map(keep, state, new_state))
    return optax.GradientTransformation(tx.init, update)


# ----- Stages -----

@dataclasses.dataclass(frozen=True)
class XLStage:
    """One resolution of the run: its stage of the grown G and its schedule."""

    res: int  # stage resolution (G's output side)
    stem: bool  # the first stage of the architecture (16^2): trains mapping and stem
    batch: int  # real images per step (spec §1.7: 2048 / 256 / 128)
    start_step: int  # first train step of the stage in this run
    steps: int  # steps of the stage (ceil(kimg·1000 / batch))


def _by_res(table, res: int, default):
    table = {int(k): v for k, v in dict(table).items()}
    return table.get(res, default)


def stage_plan(config) -> tuple:
    """The run's stages: stage_resolutions up to config.model.resolution, from train.start_res
    (0: the stem, or the final stage when config.init_from is set); per stage the batch
    (train.batch_sizes[res], else train.batch_size) and length (train.stage_kimg[res] kimg)."""
    m, t = config.model, config.train
    all_res = xl.stage_resolutions(m.resolution, m.stem_resolution)
    start = t.start_res or (m.resolution if config.get("init_from", "") else all_res[0])
    if start not in all_res:
        raise ValueError(f"config.train.start_res={start}: not a stage of {all_res}")
    plan, step = [], 0
    for res in all_res[all_res.index(start):]:
        batch = int(_by_res(t.batch_sizes, res, t.batch_size))
        kimg = _by_res(t.stage_kimg, res, None)
        if kimg is None or kimg <= 0:
            raise ValueError(f"config.train.stage_kimg: no length (kimg > 0) for the {res}^2 "
                             f"stage; got {dict(t.stage_kimg)}")
        steps = math.ceil(kimg * 1000 / batch)
        plan.append(XLStage(res, res == all_res[0], batch, step, steps))
        step += steps
    return tuple(plan)


def stage_at(plan: tuple, step: int) -> Stage:
    """The trainer Stage of train step `step` (host ints; the last stage lasts to the end)."""
    s = next((s for s in plan if step < s.start_step + s.steps), plan[-1])
    return Stage(f"res{s.res}", s.res, s.batch, s.res)


# ----- Networks with the recipe's conventions -----

class _Nets:
    """G of one stage, the projected D, the classifier; the stage's schedule."""

    def __init__(self, G, D, clf, config, stage: XLStage):
        self.G, self.D, self.clf, self.stage, self.t = G, D, clf, stage, config.train
        self.n_classes = config.model.n_classes
        self.fused_modconv = sg.train_fused_modconv(config)
        self.cls_weight = self.t.cls_weight if stage.res > self.t.cls_min_res else 0.0
        # [C]: 0 in superres stages. A stem that ends before pl_start_kimg gets no g_pl phase:
        # its loss and gradients would be 0 at every step (skipped Adam steps; the same
        # training, without the double backward's compile and run time).
        reaches = (stage.steps - 1) * stage.batch >= self.t.pl_start_kimg * 1000
        self.pl_weight = self.t.pl_weight if stage.stem and reaches else 0.0
        self.ms_weight = mode_seeking_weight(self.t, stage.batch)  # not in the paper; 0 = off

    def freeze(self, g_params):
        """g_params with the frozen stem behind stop_gradient: no backward pass through it
        (official train_head_only: requires_grad_(False)); the optimizer also zeroes it."""
        if self.stage.stem:
            return g_params
        mask = xl.stem_mask(self.G, g_params)
        return jax.tree.map(lambda f, p: jax.lax.stop_gradient(p) if f else p, mask, g_params)

    def stage_step(self, step):
        """Train steps done in this stage (the official cur_nimg = stage_step · batch)."""
        return jnp.asarray(step, jnp.int32) - self.stage.start_step

    def labels(self, key, n: int, paired=False):
        """Uniform labels (paired: the second half repeats the first half's) -> (y, one-hot)."""
        y = jax.random.randint(key, (n,), 0, max(self.n_classes, 1))
        y = losses.repeat_first_half(y) if paired else y
        c = jax.nn.one_hot(y, self.n_classes, dtype=jnp.float32) if self.n_classes else None
        return y, c

    def map(self, params, cols, z, c, update_emas=False):
        """f(z, c) -> (ws, cols); the per-class w_avg moves only with update_emas."""
        variables = {"params": params, **cols}
        if not update_emas:
            return self.G.apply(variables, z, c, method="map"), cols
        ws, new = self.G.apply(variables, z, c, update_emas=True, method="map",
                               mutable=["ema_stats"])
        return ws, {**cols, **new}

    def synthesize(self, params, cols, ws):
        img, _ = self.G.apply({"params": params, **cols}, ws, method="synthesize",
                              fused_modconv=self.fused_modconv)
        return img.astype(jnp.float32)

    def run_g(self, params, cols, key, n: int, update_emas=False, paired=False):
        """z ~ N(0, I), uniform labels (paired: see labels) -> (img, labels, c, z, cols); no
        style mixing (§3.1)."""
        kz, ky = jax.random.split(key)
        y, c = self.labels(ky, n, paired)
        z = jax.random.normal(kz, (n, self.G.z_dim), jnp.float32)
        ws, cols = self.map(params, cols, z, c, update_emas)
        return self.synthesize(params, cols, ws), y, c, z, cols

    def wrong_labels(self, key, y):
        """One-hot labels drawn uniformly from the classes other than y [N]."""
        shift = jax.random.randint(key, y.shape, 1, self.n_classes)
        return jax.nn.one_hot((y + shift) % self.n_classes, self.n_classes, dtype=jnp.float32)

    def run_d(self, params, cols, img, c, key, step, c_alt=None):
        """Blur (fading σ), then D in train mode -> ({head: logits}, {head: logits under c_alt}
        (the same features; None without c_alt), updated D collections)."""
        t = self.t
        if t.blur_sigma > 0:
            sigma = sg.blur_sigma_at(self.stage_step(step), self.stage.batch, t.blur_sigma,
                                     t.blur_fade_kimg)
            img = sg.blur_images(img, sigma, t.blur_sigma)
        (_, aux), new = self.D.apply({"params": params, **cols}, img, c, train=True, key=key,
                                     c_alt=c_alt, mutable=list(D_MUTABLE))
        f32 = lambda h: {k: v.astype(jnp.float32) for k, v in h.items()}  # noqa: E731
        alt = None if c_alt is None else f32(aux["logits_alt"])
        return f32(aux["logits"]), alt, {**cols, **new}

    def reals(self, batch):
        """Reals average-pooled to the stage resolution (the data comes at the final one)."""
        return progan_models.downscale_to(batch["image"].astype(jnp.float32), self.stage.res)


# ----- Phases -----

def _g_main(nets: _Nets, n: int, g_params, state, batch, key):
    """G main: Σ_heads mean(−D(G(z))) + λ·L_CE (guidance stages) [+ ms_weight · mode seeking
    over label pairs]."""
    del batch  # G steps use no real data
    k_g, k_d = jax.random.split(key)
    img, y, c, z, _ = nets.run_g(nets.freeze(g_params), state.collections["g"], k_g, n,
                                 paired=nets.ms_weight > 0)
    heads, _, d_cols = nets.run_d(state.params["d"], state.collections["d"], img, c, k_d,
                                  state.step)
    loss = hinge_g_heads(heads)
    metrics = {"loss_adv": loss, "logit_fake": mean_logit(heads)}
    if nets.cls_weight > 0:
        ce = classifier_guidance(nets.clf.logits(state.collections[CLF], img), y)
        loss, metrics["guidance"] = loss + nets.cls_weight * ce, ce
    if nets.ms_weight > 0:
        metrics["mode_seeking"] = losses.mode_seeking(img, z)
        loss = loss + nets.ms_weight * metrics["mode_seeking"]
    metrics["loss"] = loss
    return loss, ({**state.collections, "d": d_cols}, metrics)


def _g_pl(nets: _Nets, n: int, g_params, state, batch, key):
    """Delayed path length (SG2 §3.2, SG-XL §3.1): pl_weight · E(||J_w^T y|| − a)^2 once the
    stage has seen pl_start_kimg; before that the loss and a are 0 and unchanged."""
    del batch
    k_z, k_y, k_c = jax.random.split(key, 3)
    cols, r = state.collections["g"], nets.stage.res
    _, c = nets.labels(k_c, n)
    ws, _ = nets.map(g_params, cols, jax.random.normal(k_z, (n, nets.G.z_dim)), c)
    y = jax.random.normal(k_y, (n, r, r, nets.G.img_channels), jnp.float32) / r
    lengths = losses.path_lengths(lambda w: nets.synthesize(g_params, cols, w), ws, y)
    penalty, a = losses.path_length_penalty(lengths, state.scalars["pl_mean"], nets.t.pl_decay)
    on = nets.stage_step(state.step) * nets.stage.batch >= nets.t.pl_start_kimg * 1000
    loss = jnp.where(on, penalty * nets.pl_weight, 0.0)
    a = jnp.where(on, a, state.scalars["pl_mean"])
    metrics = {"loss": loss, "pl_penalty": penalty, "pl_mean": a, "on": on.astype(jnp.float32)}
    return loss, (state.collections, metrics, {**state.scalars, "pl_mean": a})


def _d_main(nets: _Nets, d_params, state, batch, key):
    """D main: Σ_heads mean(relu(1 + D(G(z)))) + mean(relu(1 − D(x))) [+ the mismatch terms];
    G's forward updates the per-class w_avg (official Dmain run_G(update_emas=True)). Fake then
    real, as the code. Class-conditional: both also under wrong labels (the same features), for
    the logged class margins (margin_*, pairwise_*) and the mismatch term."""
    n = batch["image"].shape[0]
    k_g, k_fake, k_real = jax.random.split(key, 3)
    fake, y_fake, c_fake, _, g_cols = nets.run_g(state.params["g"], state.collections["g"],
                                                 k_g, n, update_emas=True)
    fake = jax.lax.stop_gradient(fake)
    cond = bool(nets.n_classes)
    k_wf, k_wr = jax.random.split(jax.random.fold_in(key, WRONG_TAG))
    y_real = batch["label"]
    c_real = jax.nn.one_hot(y_real, nets.n_classes, dtype=jnp.float32) if cond else None
    heads_fake, alt_fake, d_cols = nets.run_d(
        d_params, state.collections["d"], fake, c_fake if cond else None, k_fake, state.step,
        nets.wrong_labels(k_wf, y_fake) if cond else None)
    heads_real, alt_real, d_cols = nets.run_d(
        d_params, d_cols, nets.reals(batch), c_real, k_real, state.step,
        nets.wrong_labels(k_wr, y_real) if cond else None)
    loss, metrics = d_loss(heads_real, heads_fake, alt_real, nets.t.mismatch_weight,
                           alt_fake, nets.t.mismatch_fake_weight)
    for name, h, alt in (("real", heads_real, alt_real), ("fake", heads_fake, alt_fake)):
        if cond:  # the D's class margin, true vs a wrong label
            metrics[f"margin_{name}"], metrics[f"pairwise_{name}"] = class_margin(h, alt)
            metrics[f"logit_{name}"] = mean_logit(h)
    return loss, ({**state.collections, "g": g_cols, "d": d_cols}, {"loss": loss, **metrics})


def _phases(nets: _Nets, t) -> tuple:
    micro = nets.stage.batch // t.grad_accum
    phases = [Phase("g", functools.partial(_g_main, nets, micro), update="g", uses_real=False)]
    if nets.pl_weight > 0:
        n_pl = max(micro // t.pl_batch_shrink, 1)
        phases.append(Phase("g_pl", functools.partial(_g_pl, nets, n_pl), update="g",
                            every=t.g_reg_interval, uses_real=False))
    phases.append(Phase("d", functools.partial(_d_main, nets), update="d"))
    return tuple(phases)


# ----- One stage's recipe -----

@dataclasses.dataclass(frozen=True)
class _Parts:
    """What stage_start / warm_start need of a stage besides its Recipe."""

    G: xl.Generator
    tx_g: optax.GradientTransformation
    stage: XLStage


def _one_hot(labels, n_classes: int):
    return jax.nn.one_hot(labels, n_classes, dtype=jnp.float32) if n_classes else None


def _g_optimizer(t, G):
    """Lazy-rescaled Adam on G's trainable set; the frozen stem (stem_mask) gets set_to_zero, so
    it has no Adam state and never moves; all-zero gradients skip the step."""
    adam, lr = sg.lazy_adam(t.lr_g, t.b1, t.b2, t.adam_eps, t.g_reg_interval)
    labels = lambda p: jax.tree.map(lambda f: "frozen" if f else "train", xl.stem_mask(G, p))  # noqa: E731
    tx = optax.multi_transform({"train": adam, "frozen": optax.set_to_zero()}, labels)
    return skip_zero_grads(tx), lr


def init_g(G, key, n_classes: int, embed_weights: str = "") -> dict:
    """Fresh variables of a stage's G (params and collections); the class table from
    `embed_weights` (config.model.embed_weights) when given, as the official G (SG-XL §3.1)."""
    z = jnp.zeros((2, G.z_dim), jnp.float32)
    g_vars = dict(G.init({"params": key}, z, _one_hot(jnp.zeros((2,), jnp.int32), n_classes)))
    if embed_weights and n_classes > 0:
        g_vars["params"] = nets_lib.with_class_embedding(g_vars["params"], embed_weights)
    return g_vars


def _pin_frozen_ema(G, state):
    """post_step of a superres stage: G_ema's frozen stem is G's (the EMA of two equal values
    could round away from them); official: both G and G_ema keep the reloaded stem."""
    mask = xl.stem_mask(G, state.params["g"])
    ema = jax.tree.map(lambda m, p, e: p if m else e, mask, state.params["g"], state.ema_params)
    return state.replace(ema_params=ema)


def _stage_recipe(config, G, D, clf, stage: XLStage, fit_res: tuple) -> tuple:
    """(Recipe, _Parts) of one stage; fit_res: the resolutions the frozen nets' fit pools its
    batches to (`_load_frozen`)."""
    m, t = config.model, config.train
    nets = _Nets(G, D, clf, config, stage)
    tx_g, lr_g = _g_optimizer(t, G)
    tx_d, lr_d = sg.lazy_adam(t.lr_d, t.b1, t.b2, t.adam_eps, t.d_reg_interval)
    optimizers = {"g": tx_g, "d": tx_d}

    def init_state(rng, config) -> GANState:
        kg, kd, kc, krun = jax.random.split(rng, 4)
        g_vars = init_g(G, kg, m.n_classes, m.get("embed_weights", ""))
        x = jnp.zeros((2, stage.res, stage.res, 3), jnp.float32)
        c = _one_hot(jnp.zeros((2,), jnp.int32), m.n_classes)
        d_vars = dict(D.init({"params": kd}, x, c, train=False))  # weight files: load_frozen
        params = {"g": g_vars.pop("params"), "d": d_vars.pop("params")}
        cols = {"g": g_vars, "d": d_vars}
        if clf is not None:
            cols[CLF] = clf.net.init(kc, jnp.zeros((1, clf.side, clf.side, 3), jnp.float32))
        return GANState(step=jnp.zeros((), jnp.int32), rng=krun, params=params,
                        opt_state={k: optimizers[k].init(params[k]) for k in params},
                        ema_params=jax.tree.map(jnp.copy, params["g"]), collections=cols,
                        scalars={"pl_mean": jnp.zeros((), jnp.float32)})

    def sample_fn(state, key, labels, truncation, collections):
        """EMA-G samples, class-conditional truncation ψ toward the class's w_avg (SG-XL §4.1;
        truncation <= 0: ψ = 1) -> [N, res, res, 3] (the trainer renders a stage's end grid
        with that stage's own sample_fn: the grown G cannot run on the stem's state)."""
        z = jax.random.normal(key, (labels.shape[0], G.z_dim), jnp.float32)
        psi = float(truncation) if truncation is not None and truncation > 0 else 1.0
        img, _ = G.apply({"params": state.ema_params, **collections}, z,
                           _one_hot(labels, m.n_classes), psi=psi)
        return img.astype(jnp.float32)

    ema_kimg = t.ema_kimg if t.ema_kimg > 0 else stage.batch * 10 / 32  # [C] train.py
    recipe = Recipe(
        init_state=init_state, phases=_phases(nets, t), optimizers=optimizers,
        sample_fn=sample_fn, networks={"g": G, "d": D},
        learning_rates={"g": optax.constant_schedule(lr_g), "d": optax.constant_schedule(lr_d)},
        ema_decay=lambda step: sg.ema_beta(nets.stage_step(step), stage.batch, ema_kimg,
                                           t.ema_rampup),
        post_step=None if stage.stem else functools.partial(_pin_frozen_ema, G),
        n_classes=m.n_classes, dim_z=G.z_dim,
        load_frozen=functools.partial(_load_frozen, config, clf, fit_res))
    return recipe, _Parts(G, tx_g, stage)


def _load_frozen(config, clf, fit_res, state):
    """Recipe.load_frozen: the D's feature nets and the guidance classifier from the config's
    weight files (host-side, after the jitted init); random-initialised ones stay, or are fitted
    on the data's labels with config.model.feature_fit_steps > 0 (stylegan_xl_fit), at the
    resolutions fit_res (() = the data's own)."""
    cols = {**state.collections, "d": nets_lib.load_d_weights(config, dict(state.collections["d"]))}
    if clf is not None and config.model.get("clf_weights", ""):
        cols[CLF] = nets_lib.classifier_variables(config, clf, None)
    if config.model.get("feature_fit_steps", 0) > 0:
        key = jax.random.fold_in(state.rng, FIT_TAG)
        frozen, clf_vars = fit_lib.fit_frozen(config, cols["d"][pd.FROZEN_COLLECTION], clf,
                                              cols.get(CLF), key, fit_res)
        cols["d"] = {**cols["d"], pd.FROZEN_COLLECTION: frozen}
        if clf is not None:
            cols[CLF] = clf_vars
    return state.replace(collections=cols)


# ----- Stage transitions and warm starts -----

def grow_state(state, parts: _Parts, n_classes: int, g_src: dict, key):
    """state with G grown to parts.G: stem from g_src ({"params": G_ema, collections...}), a fresh
    head (G and G_ema equal), fresh Adam for G; D, step and scalars kept."""
    fresh = jax.jit(functools.partial(init_g, parts.G, n_classes=n_classes))(key)
    g_vars = xl.grow_variables(g_src, fresh, parts.G)
    params = g_vars.pop("params")
    return state.replace(params={**state.params, "g": params},
                         ema_params=jax.tree.map(jnp.copy, params),
                         opt_state={**state.opt_state, "g": parts.tx_g.init(params)},
                         collections={**state.collections, "g": g_vars})


def _stage_start(parts: dict, n_classes: int, state, stage: Stage):
    """Recipe.stage_start: the next stage's G from the ending stage's G_ema (SG-XL §3.2)."""
    g_src = {"params": state.ema_params, **state.collections["g"]}
    key = jax.random.fold_in(state.rng, stage.key)
    return grow_state(state, parts[stage.key], n_classes, g_src, key)


def _describe(config) -> str:
    m = config.model
    return (f"recipe={config.recipe!r} variant={m.get('variant')!r} "
            f"resolution={m.get('resolution')} n_classes={m.get('n_classes')}")


def _warm_start(parts: _Parts, config, state, src):
    """Recipe.warm_start (config.init_from): grow from a source run whose latest checkpoint is
    at resolution res/2 (its G_ema as the frozen stem; its D, BN and SN state kept; fresh
    Adam); ValueError naming both configs for another family, resolution or width."""
    src_res = getattr(src.recipe.networks.get("g"), "img_resolution", None)
    want = parts.stage.res // 2
    where = (f"config.init_from={src.workdir} (step {src.step}: {_describe(src.config)}, "
             f"G at {src_res}^2) does not fit this config ({_describe(config)}, starting at "
             f"the {parts.stage.res}^2 stage, which grows from a {want}^2 run)")
    if src.config.get("recipe") != "stylegan_xl" or parts.stage.stem or src_res != want:
        raise ValueError(where)
    try:
        g_src = {"params": src.state.ema_params, **src.state.collections["g"]}
        new = grow_state(state, parts, config.model.n_classes, g_src,
                         jax.random.fold_in(state.rng, parts.stage.res))
        _check_like(state.params["d"], src.state.params["d"], "params/d")
        _check_like(state.collections["d"], src.state.collections["d"], "collections/d")
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from e
    return new.replace(params={**new.params, "d": src.state.params["d"]},
                       collections={**new.collections, "d": src.state.collections["d"]})


def _check_like(want, got, what: str) -> None:
    a = jax.tree_util.tree_flatten_with_path(want)[0]
    b = dict(jax.tree_util.tree_flatten_with_path(got)[0])
    for path, leaf in a:
        if path not in b or b[path].shape != leaf.shape:
            raise ValueError(f"the source's {what}{jax.tree_util.keystr(path)} has shape "
                             f"{getattr(b.get(path), 'shape', None)}, this run's {leaf.shape}")


# ----- The run's recipe -----

def make_recipe(config, networks=None) -> Recipe:
    """The staged StyleGAN-XL recipe of `config` (one stage per resolution of stage_plan).
    networks: optional (G, D) modules (tests): G of the final stage, grown per stage."""
    m, t = config.model, config.train
    plan = stage_plan(config)
    for field in ("mismatch_weight", "mismatch_fake_weight"):
        if loss_weight(t, field) > 0 and not m.n_classes:
            raise ValueError(f"config.train.{field}={t[field]} needs labels; n_classes is 0")
    need_clf = t.cls_weight > 0 and plan[-1].res > t.cls_min_res
    nets_lib.check_weight_files(config, need_clf)
    G, D = networks if networks is not None else (
        nets_lib.make_generator(config), nets_lib.make_discriminator(config,
                                                                     sg.data_devices(config)))
    clf = nets_lib.make_classifier(config) if need_clf else None
    gens = tuple(nets_lib.stage_generator(G, s.res) for s in plan)
    fit_res = tuple(s.res for s in plan) if m.feature_fit_stages else ()
    built = {s.res: _stage_recipe(config, g, D, clf, s, fit_res) for g, s in zip(gens, plan)}
    recipes = {r: b[0] for r, b in built.items()}
    parts = {r: b[1] for r, b in built.items()}
    base = recipes[plan[-1].res]
    return dataclasses.replace(
        base, stage_fn=functools.partial(stage_at, plan), stage_recipe=recipes.__getitem__,
        stage_start=functools.partial(_stage_start, parts, m.n_classes),
        warm_start=functools.partial(_warm_start, parts[plan[0].res], config),
        num_steps=sum(s.steps for s in plan))


__all__ = ["class_margin", "classifier_guidance", "d_loss", "hinge_d_heads", "hinge_g_heads",
           "make_recipe", "mismatch_d_heads", "skip_zero_grads", "stage_plan"]
