"""Pure loss and regulariser functions. Each equation lives here once, with its paper reference."""

import re
from typing import Optional

import jax
import jax.numpy as jnp
from flax import traverse_util


def hinge_d(logits_real, logits_fake):
    """Discriminator hinge loss, BigGAN §3 (Lim & Ye 2017). Returns (loss, (real, fake)).

    L_D = mean(relu(1 - D(x))) + mean(relu(1 + D(G(z)))), computed in float32.
    """
    loss_real = jnp.mean(jax.nn.relu(1.0 - logits_real.astype(jnp.float32)))
    loss_fake = hinge_d_fake(logits_fake)
    return loss_real + loss_fake, (loss_real, loss_fake)


def hinge_d_fake(logits):
    """hinge_d's fake part alone, mean(relu(1 + D)) in float32: for any extra input D should
    score as fake (e.g. GAN-CLS's real images under a wrong label)."""
    return jnp.mean(jax.nn.relu(1.0 + logits.astype(jnp.float32)))


def hinge_g(logits_fake):
    """Generator hinge loss, BigGAN §3: L_G = -mean(D(G(z)))."""
    return -jnp.mean(logits_fake.astype(jnp.float32))


def nonsaturating_d(logits_real, logits_fake):
    """Logistic D loss, Goodfellow et al. 2014: softplus(-D(x)) + softplus(D(G(z)))."""
    real = jnp.mean(jax.nn.softplus(-logits_real.astype(jnp.float32)))
    fake = jnp.mean(jax.nn.softplus(logits_fake.astype(jnp.float32)))
    return real + fake, (real, fake)


def nonsaturating_g(logits_fake):
    """Non-saturating G loss: softplus(-D(G(z))) = -log sigmoid(D(G(z)))."""
    return jnp.mean(jax.nn.softplus(-logits_fake.astype(jnp.float32)))


def mode_seeking(images, z, eps: float = 1e-5):
    """Mode-seeking regulariser (Mao et al., "Mode Seeking GANs", CVPR 2019, the L_ms term; in
    none of the GAN papers here): for pairs (z1, z2) under one condition, L_ms = 1 /
    (mean|G(z1) - G(z2)| / mean|z1 - z2| + eps), minimised by G (the ratio maximised), the
    means over the batch as in MSGAN's code. images [2P, ...], z [2P, Z]: pair i = rows i, P + i."""
    if images.shape[0] != z.shape[0] or images.shape[0] % 2:
        raise ValueError(f"mode_seeking: expected an even batch of images and z with the same "
                         f"rows, got {images.shape} and {z.shape}")
    a, b = jnp.split(images.astype(jnp.float32), 2)
    za, zb = jnp.split(z.astype(jnp.float32), 2)
    ratio = jnp.mean(jnp.abs(a - b)) / jnp.mean(jnp.abs(za - zb))
    return 1.0 / (ratio + eps)


def repeat_first_half(x):
    """x [N, ...] -> the first N // 2 rows twice [N, ...]: the conditions (labels, caption
    tokens) of mode_seeking's pairs, pair i = rows i and N // 2 + i (N even)."""
    half = x[:x.shape[0] // 2]
    return jnp.concatenate([half, half])


def offdiag_gram_sq(w):
    """||(W^T W) ⊙ (1 - I)||_F^2 for W [K, O] (columns = filters). BigGAN §3.1, eq. 3.

    Uses ||W^T W||_F^2 - sum_j ||w_j||^4 with the smaller of the two Gram matrices
    (||W^T W||_F = ||W W^T||_F), so G's 20 x 24576 first linear needs only a 20 x 20 Gram.
    """
    w = w.reshape(-1, w.shape[-1]).astype(jnp.float32)  # [K, O], Flax kernels are (..., in, out)
    gram = w @ w.T if w.shape[0] < w.shape[1] else w.T @ w
    col_sq = jnp.sum(jnp.square(w), axis=0)  # ||w_j||^2, [O]
    return jnp.sum(jnp.square(gram)) - jnp.sum(jnp.square(col_sq))


def ortho_reg(params, beta: float = 1e-4, exclude: Optional[str] = r"shared"):
    """Modified orthogonal regularisation, BigGAN §3.1, eq. 3: beta * sum_W ||(W^T W) ⊙ (1-I)||_F^2.

    Applied to every >= 2-D parameter whose '/'-joined path does not match `exclude` (BigGAN
    excludes G's shared class embedding). Gradient by autodiff (4 beta, spec §2.7 / §6.8).
    """
    flat = traverse_util.flatten_dict(params, sep="/")
    pattern = re.compile(exclude) if exclude else None
    terms = [offdiag_gram_sq(w) for path, w in sorted(flat.items())
             if w.ndim >= 2 and not (pattern and pattern.search(path))]
    return beta * sum(terms) if terms else jnp.zeros((), jnp.float32)


def r1_penalty(grad_real):
    """R1 (Mescheder et al. 2018): 0.5 * E ||grad_x D(x)||^2 per sample; multiply by gamma."""
    flat = grad_real.reshape(grad_real.shape[0], -1).astype(jnp.float32)
    return 0.5 * jnp.mean(jnp.sum(jnp.square(flat), axis=-1))


def r1_from_fn(d_fn, x):
    """R1 of D at reals x: 0.5 * E ||grad_x D(x)||^2 (multiply by gamma). StyleGAN2 App. B."""
    return r1_with_logits(d_fn, x)[1]


def r1_with_logits(d_fn, x):
    """(D(x) as float32 [N], R1 at x) from ONE forward of D, as the official Dboth phase does.

    d_fn: x [N, ...] -> logits [N]. The gradient is that of sum(D(x)) (`autograd.grad(
    real_logits.sum(), real_img)` in the official code): the VJP of D at x with cotangent ones,
    so the logits a loss also needs share the forward (differentiating through both reuses
    D's activations once). It is the per-sample gradient when sample i's logit depends only on
    x_i (with minibatch stddev it includes the small cross-sample terms).
    """
    logits, vjp = jax.vjp(lambda v: d_fn(v).astype(jnp.float32), x)
    (grad,) = vjp(jnp.ones_like(logits))
    return logits, r1_penalty(grad)


def path_lengths(synthesize, ws, noise):
    """||J_w^T y||_2 per sample, StyleGAN2 §3.2 eq. 4 in the official code's form. Returns [N].

    J_w^T y = grad_w (g(w) · y), one VJP with cotangent y (no explicit Jacobian); y is the given
    noise, i.i.d. N(0, 1) / sqrt(H W) in the official code. With per-layer ws [N, L, D] the length
    is sqrt(mean_l sum_d (J_{w_l}^T y)^2), i.e. averaged over the synthesis layers (App. B).
    """
    _, vjp = jax.vjp(lambda w: synthesize(w).astype(jnp.float32), ws)
    (jty,) = vjp(noise.astype(jnp.float32))  # [N, L, D]
    return jnp.sqrt(jnp.mean(jnp.sum(jnp.square(jty.astype(jnp.float32)), axis=2), axis=1))


def path_length_penalty(lengths, pl_mean, decay: float = 0.01):
    """Path-length penalty, StyleGAN2 §3.2 eq. 4: E (||J_w^T y|| - a)^2 (multiply by pl_weight).

    a <- a + decay (mean(lengths) - a) (lerp, β_pl = 1 - decay); the penalty uses the updated a,
    which (as in the official code) is not stop-gradiented. Returns (penalty, new a stopped).
    """
    a = pl_mean + decay * (jnp.mean(lengths) - pl_mean)
    return jnp.mean(jnp.square(lengths - a)), jax.lax.stop_gradient(a)


# ----- WGAN-GP + drift (Gulrajani et al. 2017; ProGAN App. A.1, §6.5, spec §B8) -----


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
