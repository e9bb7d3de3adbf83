"""BigGAN / BigGAN-deep training recipe (Brock et al. 2019, §3 and App. C; spec biggan.md §2).

Hinge loss, 2 D steps per G step with fresh real and fake batches, Adam(β1=0, β2=0.999) with the
paper's learning rates, modified orthogonal regularisation on G (β = 1e-4), EMA of G's weights
from a start step, standing statistics and the truncation trick for sampling.
"""

import functools

import jax
import jax.numpy as jnp
import optax

from gan_zoo import augment, losses
from gan_zoo.recipes.base import GANState, Phase, Recipe, data_devices, mode_seeking_weight


def sample_z(key, shape, truncation: float = 0.0, mode: str = "threshold"):
    """Latents for G. BigGAN §3.1 truncation trick (spec §2.8); truncation <= 0: plain N(0, I).

    mode="threshold": the paper's resampling — N(0, I) conditioned on |z_i| <= truncation (exact
    truncated normal, no clipping). mode="tfhub_scaled": truncation * truncnorm(-2, 2) (TF-Hub).
    """
    if truncation is None or truncation <= 0:
        return jax.random.normal(key, shape, jnp.float32)
    if mode == "threshold":
        return jax.random.truncated_normal(key, -truncation, truncation, shape, jnp.float32)
    if mode == "tfhub_scaled":
        return truncation * jax.random.truncated_normal(key, -2.0, 2.0, shape, jnp.float32)
    raise ValueError(f"sample.truncation_mode must be 'threshold' or 'tfhub_scaled', got {mode!r}")


def apply_net(module, params, collections, *args, train: bool):
    """module.apply with every mutable collection; returns (output, new collections)."""
    names = list(collections)
    variables = {"params": params, **collections}
    if not train or not names:
        return module.apply(variables, *args, train=train), collections
    out, new = module.apply(variables, *args, train=True, mutable=names)
    return out, {**collections, **new}


def learning_rates(train_cfg):
    """Constant LRs per network (BigGAN §3 / spec §2.2), as step -> lr schedules."""
    return {"g": optax.constant_schedule(train_cfg.lr_g),
            "d": optax.constant_schedule(train_cfg.lr_d)}


def make_optimizers(train_cfg):
    """Adam(β1=0, β2=0.999, ε) per network (spec §2.2). The LR is not stored in the state, so a
    changed config LR applies on resume."""
    return {k: optax.adam(lr, b1=train_cfg.b1, b2=train_cfg.b2, eps=train_cfg.adam_eps)
            for k, lr in learning_rates(train_cfg).items()}


def _fake_inputs(key, n: int, dim_z: int, n_classes: int):
    """Fresh z ~ N(0, I) and labels uniform over the classes (spec §2.1)."""
    kz, ky = jax.random.split(key)
    return sample_z(kz, (n, dim_z)), jax.random.randint(ky, (n,), 0, max(n_classes, 1))


DIFFAUG_TAG = 0x44494600  # fold_in purpose tag of the DiffAugment key of a D input


def diff_augment_input(train_cfg, key, x):
    """D's input x [N, H, W, C] through DiffAugment (Zhao et al. 2020, §3) when
    train_cfg.diffaug names a policy, with per-sample draws from `key`; else x unchanged."""
    policy = train_cfg.get("diffaug", "")
    if not policy:
        return x
    return augment.diff_augment(jax.random.fold_in(key, DIFFAUG_TAG), x, policy,
                                cutout_ratio=train_cfg.get("diffaug_cutout", 0.5),
                                fill=train_cfg.get("diffaug_fill", 0.0))


def make_recipe(config, networks=None) -> Recipe:
    """The BigGAN recipe for `config`. networks: optional (G, D) modules (tests); default: the
    `gan_zoo.models.biggan` networks built from config.model."""
    if networks is None:
        from gan_zoo.models import biggan  # noqa: PLC0415 (models are optional at import time)
        networks = (biggan.make_generator(config.model, data_devices(config)),
                    biggan.make_discriminator(config.model))
    G, D = networks
    m, t = config.model, config.train
    n_classes, dim_z, res = m.n_classes, m.dim_z, m.resolution
    micro = t.batch_size // t.grad_accum  # samples per phase per micro-batch
    ms_weight = mode_seeking_weight(t)  # mode seeking (not in BigGAN; 0 = the paper)
    optimizers = make_optimizers(t)

    def init_state(rng, config) -> GANState:
        del config  # everything needed is closed over
        kg, kd, krun = jax.random.split(rng, 3)
        z, y = jnp.zeros((2, dim_z), jnp.float32), jnp.zeros((2,), jnp.int32)
        x = jnp.zeros((2, res, res, 3), jnp.float32)
        g_vars = dict(G.init({"params": kg}, z, y, train=False))
        d_vars = dict(D.init({"params": kd}, x, y, train=False))
        params = {"g": g_vars.pop("params"), "d": d_vars.pop("params")}
        return GANState(
            step=jnp.zeros((), jnp.int32), rng=krun, params=params,
            opt_state={k: optimizers[k].init(params[k]) for k in params},
            ema_params=jax.tree.map(jnp.copy, params["g"]),
            collections={"g": g_vars, "d": d_vars}, scalars={})

    def d_loss(d_params, state, batch, key):
        """D hinge loss on one fresh real batch and one fresh fake batch (spec §2.1, §2.3)."""
        z, y = _fake_inputs(key, batch["image"].shape[0], dim_z, n_classes)
        (fake, _), g_cols = apply_net(G, state.params["g"], state.collections["g"], z, y,
                                      train=True)
        # One D forward on [fake; real], as BigGAN-PyTorch's G_D does (one SN update per D step).
        x = jnp.concatenate([jax.lax.stop_gradient(fake).astype(batch["image"].dtype),
                             batch["image"]])
        labels = jnp.concatenate([y, batch["label"]])
        x = diff_augment_input(t, key, x)
        (logits, _), d_cols = apply_net(D, d_params, state.collections["d"], x, labels, train=True)
        logits_fake, logits_real = jnp.split(logits.astype(jnp.float32), 2)
        loss, (loss_real, loss_fake) = losses.hinge_d(logits_real, logits_fake)
        metrics = {"loss": loss, "loss_real": loss_real, "loss_fake": loss_fake,
                   "logit_real": jnp.mean(logits_real), "logit_fake": jnp.mean(logits_fake)}
        return loss, ({"g": g_cols, "d": d_cols}, metrics)

    def g_loss(g_params, state, batch, key):
        """G hinge loss + modified orthogonal regularisation (spec §2.1, §2.7) [+ mode seeking]."""
        del batch  # G steps use no real data
        z, y = _fake_inputs(key, micro, dim_z, n_classes)
        if ms_weight:  # pairs under one label: the second half repeats the first half's labels
            y = losses.repeat_first_half(y)
        (fake, _), g_cols = apply_net(G, g_params, state.collections["g"], z, y, train=True)
        # D's SN state is updated in D steps only (spec §4): its new collections are dropped.
        (logits, _), _ = apply_net(D, state.params["d"], state.collections["d"],
                                   diff_augment_input(t, key, fake), y, train=True)
        adv = losses.hinge_g(logits)
        ortho = losses.ortho_reg(g_params, t.ortho_beta, t.ortho_exclude) \
            if t.ortho_beta > 0 else jnp.zeros((), jnp.float32)
        metrics = {"loss": adv + ortho, "adv": adv, "ortho": ortho}
        if ms_weight:
            metrics["mode_seeking"] = losses.mode_seeking(fake, z)
            metrics["loss"] = adv + ortho + ms_weight * metrics["mode_seeking"]
        return metrics["loss"], ({"g": g_cols, "d": state.collections["d"]}, metrics)

    def ema_decay(step):
        """EMA decay 0.9999 from ema_start; before it the EMA tracks the raw weights (spec §2.4)."""
        return jnp.where(step >= t.ema_start, t.ema_decay, 0.0)

    def sample_fn(state, key, labels, truncation, collections):
        """EMA-G samples in eval mode with the given (standing) statistics -> [N, H, W, 3]."""
        z = sample_z(key, (labels.shape[0], dim_z), truncation, config.sample.truncation_mode)
        images, _ = G.apply({"params": state.ema_params, **collections}, z, labels, train=False)
        return images.astype(jnp.float32)

    phases = tuple(Phase(f"d{i}", d_loss, update="d") for i in range(t.d_steps)) + (
        Phase("g", g_loss, update="g", uses_real=False),)
    return Recipe(
        init_state=init_state, phases=phases, optimizers=optimizers, sample_fn=sample_fn,
        learning_rates=learning_rates(t),
        networks={"g": G, "d": D}, ema_decay=ema_decay,
        sampling_collections=functools.partial(
            standing_stats, G, config.sample.standing_stats_batches,
            config.sample.standing_stats_batch_size, dim_z, n_classes,
            config.sample.truncation_mode),
        n_classes=n_classes, dim_z=dim_z)


def standing_stats(G, n_batches: int, batch: int, dim_z: int, n_classes: int, mode: str,
                   state, key, truncation):
    """Standing statistics of the EMA G, BigGAN App. C.1 (spec §2.6) -> G collections.

    Runs the EMA G in train-mode BN on `n_batches` fresh batches of (truncated) z and random
    labels, averages the per-batch means and variances, and returns them as `batch_stats`; the SN
    vectors come out warm-started on the EMA weights. n_batches == 0: the raw G's collections.
    The BN modules' running-average momentum m is unknown here, so each pass starts from zero
    stats (giving m * batch_stat) and one probe pass from ones gives 1 - m.
    """
    cols = state.collections["g"]
    if n_batches <= 0 or "batch_stats" not in cols:
        return cols

    def one_pass(key, init_value, sn):
        z = sample_z(jax.random.fold_in(key, 0), (batch, dim_z), truncation, mode)
        y = jax.random.randint(jax.random.fold_in(key, 1), (batch,), 0, max(n_classes, 1))
        stats = jax.tree.map(lambda s: jnp.full_like(s, init_value), cols["batch_stats"])
        _, new = apply_net(G, state.ema_params, {**cols, "batch_stats": stats,
                                                 **({"spectral_norm": sn} if sn else {})},
                           z, y, train=True)
        return new

    def body(i, carry):
        acc, sn = carry
        new = one_pass(jax.random.fold_in(key, i), 0.0, sn)
        acc = jax.tree.map(jnp.add, acc, new["batch_stats"])
        return acc, new.get("spectral_norm", sn)

    zero = jax.tree.map(jnp.zeros_like, cols["batch_stats"])
    acc, sn = jax.lax.fori_loop(0, n_batches, body, (zero, cols.get("spectral_norm")))
    first = one_pass(jax.random.fold_in(key, 0), 0.0, cols.get("spectral_norm"))["batch_stats"]
    probe = one_pass(jax.random.fold_in(key, 0), 1.0, cols.get("spectral_norm"))["batch_stats"]
    # probe - first = 1 - m exactly (the running update is affine in the old value).
    standing = jax.tree.map(lambda a, p, f: a / (n_batches * (1.0 - (p - f))), acc, probe, first)
    out = {**cols, "batch_stats": standing}
    if sn is not None:
        out["spectral_norm"] = sn
    return out
