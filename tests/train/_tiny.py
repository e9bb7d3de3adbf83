"""A tiny conditional G/D with the BigGAN model contract, and tiny configs, for trainer tests.

G(z, y) -> ([N, r, r, 3] in [-1, 1], aux); D(x, y) -> ([N] logits, aux). Uses the shared nn
blocks so the `batch_stats` and `spectral_norm` collections behave like the real networks'.
"""

import flax.linen as nn
import jax.numpy as jnp

from configs import biggan as biggan_config
from gan_zoo import nn as gnn


class TinyG(nn.Module):
    resolution: int = 16
    ch: int = 8
    n_classes: int = 10
    reduction_group: str = "global"

    @nn.compact
    def __call__(self, z, y, *, train: bool):
        emb = gnn.Embedding(self.n_classes, 16, name="shared")(y)  # [N, 16]
        cond = jnp.concatenate([z, emb], axis=-1)
        s = 4
        h = gnn.SNDense(s * s * self.ch, name="linear")(cond, train=train)
        h = h.reshape(z.shape[0], s, s, self.ch)
        while s < self.resolution:
            h = gnn.ConditionalBatchNorm(reduction_group=self.reduction_group)(h, cond, train=train)
            h = nn.relu(h)
            h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)
            h = gnn.SNConv(self.ch)(h, train=train)
            s *= 2
        h = gnn.BatchNorm(reduction_group=self.reduction_group, name="bn_out")(h, train=train)
        x = jnp.tanh(gnn.SNConv(3, name="to_rgb")(nn.relu(h), train=train))
        return x, {}


class TinyD(nn.Module):
    ch: int = 8
    n_classes: int = 10

    @nn.compact
    def __call__(self, x, y, *, train: bool):
        h = x
        while h.shape[1] > 4:
            h = nn.relu(gnn.SNConv(self.ch)(h, train=train))
            h = nn.avg_pool(h, (2, 2), (2, 2))
        h = jnp.sum(nn.relu(h), axis=(1, 2))  # [N, C]
        out = gnn.SNDense(1, name="out")(h, train=train)[:, 0]
        proj = gnn.SNEmbedding(self.n_classes, self.ch, name="embed")(y, train=train)
        return out + jnp.sum(proj * h, axis=-1), {}


def tiny_networks(config):
    m = config.model
    return (TinyG(m.resolution, m.G_ch, m.n_classes, m.bn_reduction_group),
            TinyD(m.D_ch, m.n_classes))


def tiny_config(**overrides):
    """The digits preset shrunk to 16x16, ch 8, batch 8, synchronous checkpoints."""
    c = biggan_config.get_config("digits")
    c.model.resolution, c.model.G_ch, c.model.D_ch, c.model.dim_z = 16, 8, 8, 16
    c.train.batch_size, c.train.num_steps, c.train.ema_start = 8, 6, 2
    c.sample.standing_stats_batches, c.sample.standing_stats_batch_size = 2, 8
    c.checkpoint.every_steps, c.checkpoint.use_async = 3, False
    c.log.every_steps, c.log.image_every_steps, c.log.sv_every_steps, c.log.grid_size = 1, 0, 0, 4
    c.matmul_precision = "highest"
    for key, value in overrides.items():
        target = c
        *parents, leaf = key.split(".")
        for p in parents:
            target = target[p]
        target[leaf] = value
    return c
