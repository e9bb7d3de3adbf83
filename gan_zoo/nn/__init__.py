"""Flax building blocks shared by several GAN families (NHWC, HWIO kernels, float32 params).

Collections: `params`; `spectral_norm` (`u0`, `sv0` of every SN layer); `batch_stats`
(`stored_mean`, `stored_var` of every BN).
"""

from gan_zoo.nn.attention import Attention
from gan_zoo.nn.batch_norm import (
    BN_COLLECTION,
    BatchNorm,
    ConditionalBatchNorm,
    grouped_moments,
    resolve_group_size,
)
from gan_zoo.nn.embedding import Embedding
from gan_zoo.nn.equalized import EqualizedConv, EqualizedDense, equalized_init, weight_gain
from gan_zoo.nn.pixel_norm import PixelNorm, pixel_norm
from gan_zoo.nn.spectral_norm import (
    SN_COLLECTION,
    SNConv,
    SNDense,
    SNEmbedding,
    l2_normalize,
    power_iteration,
    sn_weight,
)

__all__ = [
    "Attention",
    "BN_COLLECTION",
    "BatchNorm",
    "ConditionalBatchNorm",
    "Embedding",
    "EqualizedConv",
    "EqualizedDense",
    "PixelNorm",
    "SNConv",
    "SNDense",
    "SNEmbedding",
    "SN_COLLECTION",
    "equalized_init",
    "grouped_moments",
    "l2_normalize",
    "pixel_norm",
    "power_iteration",
    "resolve_group_size",
    "sn_weight",
    "weight_gain",
]
