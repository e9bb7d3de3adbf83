"""Fréchet distance between Gaussians fitted to features: FID, sFID, rFID.

FID (Heusel et al. 2017; spec stylegan2_and_progan.md Part C): ||mu_r - mu_g||^2 +
Tr(S_r + S_g - 2 (S_r S_g)^(1/2)) on Inception pool3. sFID (Nash et al. 2021) uses the 2023-d
mixed_6/conv feature, rFID (StyleGAN-XL §4.1) pool3 of a randomly initialised Inception.
Statistics are accumulated in float64 on the host; sqrtm is scipy's, real part kept.
"""

import dataclasses

import numpy as np
import scipy.linalg

from gan_zoo.metrics import _checks


@dataclasses.dataclass
class FeatureStats:
    """Streaming mean/covariance of features in float64 (raw moments)."""
    dim: int
    count: int = 0
    total: np.ndarray = None  # sum_i x_i, [D]
    outer: np.ndarray = None  # sum_i x_i x_i^T, [D, D]

    def __post_init__(self):
        self.total = np.zeros(self.dim) if self.total is None else self.total
        self.outer = np.zeros((self.dim, self.dim)) if self.outer is None else self.outer

    def update(self, x) -> "FeatureStats":
        x = _checks.features(x, "FeatureStats.update", min_count=0, dim=self.dim)
        self.count += x.shape[0]
        self.total += x.sum(0)
        self.outer += x.T @ x
        return self

    def mean_cov(self):
        """(mu [D], sigma [D, D]) with the unbiased (n - 1) covariance, as np.cov."""
        if self.count < 2:
            raise ValueError(f"FeatureStats: needs at least 2 samples for a covariance, got "
                             f"{self.count}")
        mu = self.total / self.count
        sigma = (self.outer - self.count * np.outer(mu, mu)) / (self.count - 1)
        return mu, sigma

    def save(self, path) -> None:
        np.savez(path, count=self.count, total=self.total, outer=self.outer)

    @classmethod
    def load(cls, path) -> "FeatureStats":
        with np.load(path) as d:
            return cls(d["total"].shape[0], int(d["count"]), d["total"], d["outer"])


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6, method: str = "sqrtm") -> float:
    """||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 sqrtm(sigma1 sigma2)), float64 (Heusel 2017).

    method "sqrtm": scipy.linalg.sqrtm of the product, real part (the official protocol).
    method "eigh": Tr sqrt(S1 S2) = sum sqrt(eig(S1^1/2 S2 S1^1/2)) with symmetric
    eigendecompositions; equal for PSD covariances and much faster at 2048-d.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    d = mu1.shape[0]
    if mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"frechet_distance: shapes mu {mu1.shape}/{mu2.shape}, sigma "
                         f"{sigma1.shape}/{sigma2.shape} do not agree")
    for a, n in ((mu1, "mu1"), (mu2, "mu2"), (sigma1, "sigma1"), (sigma2, "sigma2")):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"frechet_distance: {n} contains NaN or Inf")
    diff = mu1 - mu2
    if method == "eigh":
        return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * _trace_sqrt(sigma1,
                                                                                         sigma2))
    if method != "sqrtm":
        raise ValueError(f"frechet_distance: method must be 'sqrtm' or 'eigh', got {method!r}")
    covmean, _ = scipy.linalg.sqrtm(sigma1 @ sigma2, disp=False)
    if not np.all(np.isfinite(covmean)):  # singular product: offset the diagonals (pytorch-fid)
        offset = np.eye(d) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"frechet_distance: sqrtm has a large imaginary component "
                             f"{np.max(np.abs(covmean.imag)):.3g}")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def _trace_sqrt(sigma1, sigma2) -> float:
    """Tr sqrtm(sigma1 sigma2) for symmetric PSD matrices, via eigh (negatives clipped to 0)."""
    w, v = np.linalg.eigh(sigma1)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T  # sigma1^(1/2)
    ev = np.linalg.eigvalsh(root @ sigma2 @ root)
    return float(np.sum(np.sqrt(np.clip(ev, 0, None))))


def fid_from_stats(stats_a: FeatureStats, stats_b: FeatureStats, method: str = "sqrtm") -> float:
    return frechet_distance(*stats_a.mean_cov(), *stats_b.mean_cov(), method=method)


def fid_from_features(feat_a, feat_b) -> float:
    """Fréchet distance between two feature sets [N, D] (N >= 2 each)."""
    a = _checks.features(feat_a, "fid: first feature set")
    b = _checks.features(feat_b, "fid: second feature set", dim=a.shape[1])
    sa = FeatureStats(a.shape[1]).update(a)
    return fid_from_stats(sa, FeatureStats(b.shape[1]).update(b))
