"""Plain class-embedding table with the torch parameter name `weight`. BigGAN §3 / App. B: G's
shared embedding (not spectrally normalised) and the per-layer embeddings of non-shared ccbn.
"""

from typing import Callable, Optional

import flax.linen as nn
import jax.numpy as jnp

Dtype = jnp.dtype


class Embedding(nn.Module):
    """Embedding lookup (torch nn.Embedding). ids: int [...] -> [..., features].

    Params: `weight` [num_embeddings, features].
    """

    num_embeddings: int  # number of classes
    features: int  # embedding dimension
    weight_init: Callable = nn.initializers.orthogonal()  # BigGAN §3: orthogonal init
    dtype: Optional[Dtype] = None  # dtype of the returned rows; None: float32

    @nn.compact
    def __call__(self, ids):
        if not jnp.issubdtype(ids.dtype, jnp.integer):
            raise ValueError(f"Embedding: ids must be integer class indices, got {ids.dtype}")
        shape = (self.num_embeddings, self.features)
        w = self.param("weight", self.weight_init, shape, jnp.float32)  # [n_classes, D]
        out = jnp.take(w, ids, axis=0)
        return out if self.dtype is None else out.astype(self.dtype)
