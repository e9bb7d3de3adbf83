"""WGAN-GP losses with ProGAN's drift term and AC-GAN label penalty (pure functions).

Gulrajani et al. 2017 (WGAN-GP); Karras et al. 2018 App. A.1, §6.5 (drift, normalised target γ);
spec stylegan2_and_progan.md §B8. Kept apart from gan_zoo/losses.py only because that file has
another owner right now: these functions belong there and should move.
"""

import jax
import jax.numpy as jnp


def wgan_d(scores_real, scores_fake):
    """Critic loss E_z[D(G(z))] − E_x[D(x)] (WGAN, PG §B8). Returns (loss, (real, fake) means)."""
    real = jnp.mean(scores_real.astype(jnp.float32))
    fake = jnp.mean(scores_fake.astype(jnp.float32))
    return fake - real, (real, fake)


def wgan_g(scores_fake):
    """Generator loss −E_z[D(G(z))] (WGAN, PG §B8)."""
    return -jnp.mean(scores_fake.astype(jnp.float32))


def interpolate(key, real, fake):
    """x̂ = x + u·(G(z) − x), u ~ U(0, 1) per sample (WGAN-GP; PG §B8). real, fake: [N, ...]."""
    u = jax.random.uniform(key, (real.shape[0],) + (1,) * (real.ndim - 1), jnp.float32)
    return real + u * (fake.astype(real.dtype) - real)


def gradient_penalty(score_fn, x_hat, target: float = 1.0):
    """E_x̂[(‖∇_x̂ D(x̂)‖₂ − γ)² / γ²] (WGAN-GP; PG §6.5 normalised form, γ = 1 by default).

    score_fn: x [N, ...] -> scores [N]. The gradient is that of sum_i D(x̂_i), as the official
    code does; it equals the per-sample gradient unless D couples samples (minibatch stddev).
    Differentiable again w.r.t. whatever score_fn closes over (double backprop).
    """
    grads = jax.grad(lambda x: jnp.sum(score_fn(x).astype(jnp.float32)))(x_hat)
    norms = jnp.sqrt(jnp.sum(jnp.square(grads.reshape(grads.shape[0], -1)), axis=-1))  # [N]
    return jnp.mean(jnp.square(norms - target)) / (target ** 2)


def drift_penalty(scores_real):
    """ε_drift term E_x[D(x)²] (PG App. A.1 "fourth term"; multiply by ε_drift = 0.001)."""
    return jnp.mean(jnp.square(scores_real.astype(jnp.float32)))


def acgan_label_penalty(class_logits, labels):
    """AC-GAN label penalty E[CE(softmax(logits), labels)] (official ProGAN D_wgangp_acgan)."""
    logp = jax.nn.log_softmax(class_logits.astype(jnp.float32), axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None].astype(jnp.int32), axis=-1))
