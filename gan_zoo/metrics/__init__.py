"""Evaluation metrics: pure functions on features/images, plus `evaluate` for sample_fn + reals.

FID / sFID / rFID (`frechet`), KID (`kid`), Inception Score (`inception_score`), improved
precision/recall (`precision_recall`), SWD (`swd`), MS-SSIM (`ms_ssim`), PPL (`ppl`) and EQ-T /
EQ-R (`equivariance`) and CLIP score (`clip_score`). Feature extraction with the FID Inception is in
`features`.
"""

from gan_zoo.metrics.evaluate import METRICS, evaluate
from gan_zoo.metrics.frechet import (
                                     FeatureStats,
                                     fid_from_features,
                                     fid_from_stats,
                                     frechet_distance,
)
from gan_zoo.metrics.inception_score import inception_score
from gan_zoo.metrics.kid import kid
from gan_zoo.metrics.ms_ssim import ms_ssim, ms_ssim_diversity
from gan_zoo.metrics.precision_recall import precision_recall
from gan_zoo.metrics.swd import swd

__all__ = ["METRICS", "FeatureStats", "evaluate", "fid_from_features", "fid_from_stats",
           "frechet_distance", "inception_score", "kid", "ms_ssim", "ms_ssim_diversity",
           "precision_recall", "swd"]
