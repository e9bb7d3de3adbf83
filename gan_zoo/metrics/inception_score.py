"""Inception Score (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))), torch-fidelity protocol.

From the Inception's unbiased logits (`logits_unbiased`, TF node softmax/logits/MatMul), 10 splits,
samples shuffled with a fixed seed first (torch-fidelity `isc_samples_shuffle`); mean and std over
splits. Computed in float64.
"""

import numpy as np
import scipy.special

from gan_zoo.metrics import _checks


def inception_score(logits, splits: int = 10, shuffle: bool = True,
                    seed: int = 0) -> tuple[float, float]:
    """(mean, std) of exp(mean_x KL(p(y|x) || p(y))) over `splits` equal splits. logits: [N, K]."""
    splits = _checks.positive_int(splits, "inception_score: splits")
    logits = _checks.features(logits, "inception_score: logits", min_count=splits)
    if shuffle:
        logits = logits[np.random.default_rng(seed).permutation(logits.shape[0])]
    log_p = scipy.special.log_softmax(logits, axis=1)  # log p(y|x)
    n, scores = logits.shape[0], []
    for i in range(splits):
        part = log_p[n * i // splits:n * (i + 1) // splits]  # StyleGAN3 split boundaries
        log_py = scipy.special.logsumexp(part, axis=0) - np.log(part.shape[0])  # log p(y)
        kl = np.sum(np.exp(part) * (part - log_py), axis=1)
        scores.append(np.exp(np.mean(kl)))
    return float(np.mean(scores)), float(np.std(scores))
