"""ProGAN training recipe (Karras et al. 2018, §2, App. A.1; spec stylegan2_and_progan.md B2, B8,
B9): WGAN-GP (λ = 10, γ = 1) + drift (ε_drift = 0.001), n_critic = 1, Adam(1e-3, β1 = 0,
β2 = 0.99, ε = 1e-8), EMA of G 0.999, and progressive growing.

Growing: the networks hold every layer from the start (gan_zoo.models.progan), so one GANState
serves every resolution. The resolution is static: `make_recipe(config, resolution=r)` builds
the recipe (and so the jitted step) for one resolution; `make_recipes` builds all of them. The
fade-in weight lives in `state.scalars["alpha"]` and the image counter in
`state.scalars["images_seen"]` (int32); `post_step` advances both, so the schedule resumes from a
checkpoint. `schedule(images_seen, growth)` tells the trainer which recipe to run next.
"""

import dataclasses
import functools
from typing import Mapping, Optional

import jax
import jax.numpy as jnp
import optax

from gan_zoo import losses
from gan_zoo.models import progan as progan_models
from gan_zoo.nn import precision
from gan_zoo.recipes import growing
from gan_zoo.recipes.base import GANState, Phase, Recipe
from gan_zoo.recipes.growing import (  # noqa: F401  (re-exported: the ProGAN schedule API)
    alpha_at,
    phase_index,
    prepare_reals,
    reset_optimizers,
    schedule,
    stage_name,
    steps_for_images,
)

# Paper hyperparameters (PG App. A.1; λ and γ from the official code, spec B8, B14.2).
TRAIN_DEFAULTS = dict(
    lr=1e-3, b1=0.0, b2=0.99, adam_eps=1e-8,  # Adam, no decay (B9)
    gp_lambda=10.0, gp_target=1.0,  # WGAN-GP λ and γ (γ = 750 for CIFAR-10, §6.5)
    drift=1e-3,  # ε_drift
    ema_decay=0.999,  # G weight EMA
    cond_weight=1.0,  # AC-GAN label penalty weight (official code), used when n_classes > 0
    phase_kimg=800,  # fade-in and stabilisation length in kimg: 800 CelebA-HQ (B2), 600 Table 1
)

# Minibatch per resolution (PG App. A.1, spec B9): 16 up to 128^2, then 14, 6, 3.
PAPER_BATCH = {4: 16, 8: 16, 16: 16, 32: 16, 64: 16, 128: 16, 256: 14, 512: 6, 1024: 3}


@dataclasses.dataclass(frozen=True)
class Growth(growing.Growth):
    """The ProGAN growing schedule (PG §2 / App. A.1): from 4^2, 800k images per phase, the
    paper's minibatch table. See gan_zoo.recipes.growing."""

    phase_images: int = 800_000  # images per fade-in and per stabilisation phase
    batch_sizes: Mapping = dataclasses.field(default_factory=lambda: dict(PAPER_BATCH))


def sample_latents(key, n: int, latent_size: int):
    """z ~ N(0, I); G pixel-normalises it onto the hypersphere (PG App. A.1, spec B6)."""
    return jax.random.normal(key, (n, latent_size), jnp.float32)


def make_optimizers(t) -> dict:
    """Adam(lr, β1, β2, ε) per network, constant lr (PG App. A.1: no decay or rampdown)."""
    return {k: optax.adam(t.lr, b1=t.b1, b2=t.b2, eps=t.adam_eps) for k in ("g", "d")}


def growth_from_config(config) -> Growth:
    """Growth schedule of config.model.resolution / config.train.phase_kimg (/ batch_sizes)."""
    t = config.train
    sizes = t.get("batch_sizes", None)
    sizes = PAPER_BATCH if not sizes else {int(k): int(v) for k, v in dict(sizes).items()}
    return Growth(int(config.model.resolution), int(round(t.phase_kimg * 1000)), sizes)


# Optional config.model keys that override the variant's row (CPU presets: narrower networks).
_MODEL_OVERRIDES = ("fmap_base", "fmap_max", "latent_size", "mbstd_group_size")


def _networks(config):
    m = config.model
    over = {k: m[k] for k in _MODEL_OVERRIDES if m.get(k, 0)}
    g_over = {k: v for k, v in over.items() if k != "mbstd_group_size"}
    d_over = {k: v for k, v in over.items() if k != "latent_size"}
    # Mixed precision of the highest resolutions (StyleGAN2-ADA num_fp16_res; clamp 0 = off).
    prec = dict(num_fp16_res=m.get("num_fp16_res", 0), fp16_dtype=m.get("fp16_dtype", "auto"),
                conv_clamp=m.get("conv_clamp", 0.0) or None)
    g_over.update(prec)
    d_over.update(prec)
    return (progan_models.make_generator(m.variant, m.n_classes, resolution=m.resolution,
                                         **g_over),
            progan_models.make_discriminator(m.variant, m.n_classes, resolution=m.resolution,
                                             **d_over))


def _d_loss_terms(D, d_params, real, fake, labels, alpha, key, res, t, n_classes):
    """WGAN-GP critic loss + drift (+ AC-GAN label penalty). PG App. A.1, spec B8."""
    def critic(x):
        return D.apply({"params": d_params}, x, res=res, alpha=alpha)

    s_real, aux_real = critic(real)
    s_fake, aux_fake = critic(fake)
    wgan, (mean_real, mean_fake) = losses.wgan_d(s_real, s_fake)
    x_hat = losses.interpolate(key, real, fake)
    gp = losses.gradient_penalty(lambda x: critic(x)[0], x_hat, t.gp_target)
    drift = losses.drift_penalty(s_real)
    loss = wgan + t.gp_lambda * gp + t.drift * drift
    metrics = {"wgan": wgan, "gp": gp, "drift": drift, "score_real": mean_real,
               "score_fake": mean_fake}
    if n_classes:
        label = (losses.acgan_label_penalty(aux_real["class_logits"], labels)
                 + losses.acgan_label_penalty(aux_fake["class_logits"], labels))
        loss = loss + t.cond_weight * label
        metrics["label"] = label
    return loss, dict(metrics, loss=loss)


def make_recipe(config, networks=None, resolution: Optional[int] = None) -> Recipe:
    """The ProGAN recipe at one static `resolution` (default: the final one).

    config.model: variant, resolution, n_classes. config.train: the TRAIN_DEFAULTS keys.
    networks: optional (G, D) (tests); default: gan_zoo.models.progan from config.model.
    """
    G, D = networks if networks is not None else _networks(config)
    t, n_classes, zdim = config.train, config.model.n_classes, G.latent_size
    growth = growth_from_config(config)
    res = growth.final_resolution if resolution is None else int(resolution)
    if res not in growth.resolutions:
        raise ValueError(f"progan.make_recipe: resolution must be one of {growth.resolutions}, "
                         f"got {res}")
    batch = growth.batch_sizes[res]  # real images per train step at this resolution
    batch_size_g = batch // max(int(t.get("grad_accum", 1)), 1)  # G micro-batch
    optimizers = make_optimizers(t)

    def generate(g_params, key, labels, alpha, n):
        z = sample_latents(key, n, zdim)
        return G.apply({"params": g_params}, z, labels if n_classes else None, res=res,
                       alpha=alpha)[0]

    def d_loss(d_params, state, batch, key):
        """One critic step on a real batch and a fresh fake batch (n_critic = 1)."""
        alpha = state.scalars["alpha"]
        real = prepare_reals(batch["image"], res, alpha)
        labels = batch.get("label") if n_classes else None
        kz, ku = jax.random.split(key)
        # Fakes use the reals' labels, as the official code does.
        fake = jax.lax.stop_gradient(generate(state.params["g"], kz, labels, alpha,
                                              real.shape[0]))
        loss, metrics = _d_loss_terms(D, d_params, real, fake, labels, alpha, ku, res, t,
                                      n_classes)
        return loss, (state.collections, metrics)

    def g_loss(g_params, state, batch, key):
        """−E[D(G(z))] (+ AC-GAN label penalty on the fakes)."""
        del batch  # G steps use no real data
        alpha = state.scalars["alpha"]
        kz, ky = jax.random.split(key)
        labels = jax.random.randint(ky, (batch_size_g,), 0, max(n_classes, 1))
        fake = generate(g_params, kz, labels, alpha, batch_size_g)
        scores, aux = D.apply({"params": state.params["d"]}, fake, res=res, alpha=alpha)
        loss = losses.wgan_g(scores)
        metrics = {"wgan": loss}
        if n_classes:
            label = losses.acgan_label_penalty(aux["class_logits"], labels)
            loss, metrics["label"] = loss + t.cond_weight * label, label
        return loss, (state.collections, dict(metrics, loss=loss))

    def init_state(rng, config) -> GANState:
        del config  # everything needed is closed over
        return init_progan_state(G, D, optimizers, rng, n_classes)

    def sample_fn(state, key, labels, truncation, collections):
        """EMA-G samples at this resolution and the state's α -> [N, res, res, 3]."""
        del truncation, collections  # ProGAN has neither
        return generate(state.ema_params, key, labels, state.scalars["alpha"], labels.shape[0])

    phases = (Phase("d", d_loss, update="d"), Phase("g", g_loss, update="g", uses_real=False))
    # Static loss scale of float16 layers (precision.loss_scaled; 1 otherwise).
    phases = precision.loss_scaled_phases(
        phases, precision.resolve_loss_scale(t.get("loss_scale", 0.0), G, D))
    return Recipe(init_state=init_state, phases=phases, optimizers=optimizers,
                  sample_fn=sample_fn, networks={"g": G, "d": D},
                  ema_decay=lambda step: jnp.float32(t.ema_decay),
                  post_step=functools.partial(growing.count_images, batch=batch, growth=growth),
                  n_classes=n_classes, dim_z=zdim)


def make_recipes(config, networks=None) -> dict:
    """{resolution: Recipe} for every resolution of the growth schedule (one jit each)."""
    growth = growth_from_config(config)
    return {r: make_recipe(config, networks, r) for r in growth.resolutions}


def init_progan_state(G, D, optimizers, rng, n_classes: int) -> GANState:
    """All parameters of both networks up to the final resolution (init runs at 4^2; the models
    create every skipped layer at init), Adam states, EMA = G, α = 1, images_seen = 0."""
    kg, kd, krun = jax.random.split(rng, 3)
    z = jnp.zeros((2, G.latent_size), jnp.float32)
    y = jnp.zeros((2,), jnp.int32) if n_classes else None
    params = {"g": G.init({"params": kg}, z, y, res=4)["params"],
              "d": D.init({"params": kd}, jnp.zeros((2, 4, 4, 3), jnp.float32), res=4)["params"]}
    return GANState(
        step=jnp.zeros((), jnp.int32), rng=krun, params=params,
        opt_state={k: optimizers[k].init(params[k]) for k in params},
        ema_params=jax.tree.map(jnp.copy, params["g"]), collections={"g": {}, "d": {}},
        scalars=growing.initial_scalars())


def make_staged_recipe(config, networks=None) -> Recipe:
    """The ProGAN recipe for the generic trainer (config.recipe = "progan"): one stage per
    growing phase, one compiled step per resolution, run length config.train.total_kimg.

    config.train.reset_opt_at_stage: fresh Adam moments at the start of every fade-in and
    stabilisation phase, as the official code does (`reset_opt_for_new_lod`, spec B2 [code]).
    """
    growth = growth_from_config(config)
    networks = networks if networks is not None else _networks(config)
    return growing.staged(make_recipes(config, networks), growth,
                          int(round(config.train.total_kimg * 1000)),
                          reset_opt=config.train.reset_opt_at_stage)
