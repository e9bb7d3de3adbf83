"""Sample-based evaluation: `evaluate(sample_fn, real_images_iter, metrics, num_samples, ...)`.

Generated images are drawn in batches from `sample_fn(key, n)` with keys folded from `seed`, fed
through the (sharded) feature networks once, and every requested metric is computed from the
streamed features. Real statistics for FID / sFID / rFID are cached in `workdir` when given.
"""

import hashlib
from typing import Callable, Iterable

import jax
import numpy as np

from gan_zoo.metrics import _checks, frechet
from gan_zoo.metrics.features import (
    InceptionFeatures,
    accumulate,
    save_stats,
    stats_cache_path,
    to_uint8,
)
from gan_zoo.metrics.frechet import FeatureStats
from gan_zoo.metrics.inception_score import inception_score
from gan_zoo.metrics.kid import kid
from gan_zoo.metrics.ms_ssim import ms_ssim_diversity
from gan_zoo.metrics.precision_recall import precision_recall
from gan_zoo.metrics.swd import swd

METRICS = ("fid", "kid", "is", "sfid", "rfid", "pr", "swd", "ms_ssim", "clip_score")
_INCEPTION_FEATURE = {"fid": "pool3", "kid": "pool3", "is": "logits_unbiased", "sfid": "sfid"}


def _generated_batches(sample_fn, num_samples, batch_size, seed, prompts=None):
    """Yields uint8 NHWC batches; batch i uses fold_in(PRNGKey(seed), i). A sample_fn of a
    text-conditional G returns (images, prompts); each batch's prompts go to `prompts` (a list)."""
    base = jax.random.PRNGKey(seed)
    for i, start in enumerate(range(0, num_samples, batch_size)):
        n = min(batch_size, num_samples - start)
        images = sample_fn(jax.random.fold_in(base, i), n)
        if isinstance(images, tuple) and len(images) == 2:
            images, texts = images
            if prompts is not None:
                prompts.append(list(texts))
        images = np.asarray(images)
        if images.dtype != np.uint8:
            images = to_uint8(images)  # float in [-1, 1]
        yield _checks.images(images, "evaluate: sample_fn output")


def _real_batches(real_images_iter, num_real):
    """Up to num_real images (all if None) from an iterable (or a callable returning one)."""
    it = real_images_iter() if callable(real_images_iter) else real_images_iter
    seen = 0
    for batch in it:
        batch = _checks.images(np.asarray(batch), "evaluate: real images")
        if num_real is not None:
            batch = batch[:num_real - seen]
        if len(batch):
            seen += len(batch)
            yield batch
        if num_real is not None and seen >= num_real:
            return


def _check_metrics(metrics, inception, pr_features, clip):
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"evaluate: unknown metrics {unknown}; expected some of {METRICS}")
    if inception is None and set(metrics) & {"fid", "kid", "is", "sfid"}:
        raise ValueError("evaluate: fid/kid/is/sfid need `inception` (variables from "
                         "gan_zoo.convert.inception.load_inception(path))")
    if "pr" in metrics and pr_features is None:
        raise ValueError("evaluate: 'pr' needs `pr_features` (images -> [N, D] features, e.g. "
                         "VGG16 fc2)")
    if "clip_score" in metrics and clip is None:
        raise ValueError("evaluate: 'clip_score' needs `clip` (a metrics.clip_score.ClipEmbedder, "
                         "e.g. clip_score.load_embedder(path))")



def evaluate(sample_fn: Callable, real_images_iter, metrics: Iterable[str], num_samples: int, *,
             inception=None, batch_size: int = 50, seed: int = 0, num_real: int = None,
             workdir=None, dataset_name: str = None, rfid_seed: int = 0, rfid_inception=None,
             pr_features=None, clip=None,
             kid_subsets: int = 100, kid_subset_size: int = 1000, is_splits: int = 10,
             ms_ssim_pairs: int = 10_000, mesh=None, fid_method: str = "sqrtm") -> dict:
    """Computes the requested metrics for `num_samples` generated images.

    Args:
      sample_fn: (key, n) -> n images NHWC, uint8 or float in [-1, 1] (converted like StyleGAN).
      real_images_iter: iterable of uint8 NHWC batches (or a no-argument callable returning one);
        unused (may be None) when only 'is' / 'ms_ssim' are requested.
      metrics: names from METRICS: fid, kid, is, sfid, rfid, pr, swd, ms_ssim.
      inception: FID Inception variables (`convert.inception.load_inception`).
      rfid_inception: rFID's random Inception, loaded from its saved file (`load_inception`);
        None: drawn from `rfid_seed` (`convert.inception.rfid_variables`; rFID is only
        comparable across runs that use the same weights).
      num_real: how many real images to use (None: all the iterator yields).
      workdir, dataset_name: cache real FID/sFID/rFID statistics under workdir/metric_stats.
      pr_features: images -> [N, D] features for precision/recall (VGG16 fc2 in the protocol).
      clip: CLIP score's `clip_score.ClipEmbedder`; 'clip_score' needs a sample_fn returning
        (images, prompts), prompts being one string per image.
      fid_method: 'sqrtm' (scipy, the protocol) or 'eigh' (same value for PSD, much faster).
    Returns:
      {'fid', 'kid', 'kid_std', 'is', 'is_std', 'sfid', 'rfid', 'precision', 'recall',
       'swd' (average x1e3), 'swd/<res>', 'ms_ssim', 'clip_score'} for the requested metrics.
    """
    metrics = tuple(dict.fromkeys(metrics))
    _check_metrics(metrics, inception, pr_features, clip)
    num_samples = _checks.positive_int(num_samples, "evaluate: num_samples")
    prompts = []
    gen = list(_generated_batches(sample_fn, num_samples, batch_size, seed, prompts))
    reals = _Reals(real_images_iter, num_real)  # read on first use (not at all on cache hits)
    out = {}
    out.update(_inception_metrics(metrics, inception, gen, reals, mesh, workdir, dataset_name,
                                  num_real, kid_subsets, kid_subset_size, is_splits, seed,
                                  fid_method))
    if "rfid" in metrics:
        out["rfid"] = _rfid(gen, reals, rfid_inception, rfid_seed, mesh, workdir,
                            dataset_name, num_real, fid_method)
    if "pr" in metrics:
        real_f = np.concatenate([pr_features(b) for b in reals.get("pr")])
        gen_f = np.concatenate([pr_features(b) for b in gen])
        out["precision"], out["recall"] = precision_recall(real_f, gen_f)
    if "swd" in metrics:
        levels = swd(np.concatenate(reals.get("swd")), np.concatenate(gen), seed=seed)
        out.update({f"swd/{k}": v for k, v in levels.items() if k != "avg"})
        out["swd"] = levels["avg"]
    if "ms_ssim" in metrics:
        out["ms_ssim"] = ms_ssim_diversity(np.concatenate(gen), ms_ssim_pairs, seed)
    if "clip_score" in metrics:
        out["clip_score"] = _clip_score(clip, gen, prompts)
    return out


def _clip_score(clip, gen, prompts) -> float:
    """CLIP score (StyleGAN-T) of the generated batches against their prompts."""
    from gan_zoo.metrics import clip_score  # noqa: PLC0415

    if len(prompts) != len(gen):
        raise ValueError("evaluate: 'clip_score' needs prompts: sample_fn must return (images, "
                         "prompts) with one prompt string per image")
    return clip_score.score_batches(clip, gen, prompts)


def fingerprint(variables) -> str:
    """Short sha256 of a variables pytree (names the weights in the stats-cache protocol)."""
    h = hashlib.sha256()
    leaves = jax.tree_util.tree_leaves_with_path(variables)
    for path, leaf in sorted(leaves, key=lambda t: str(t[0])):
        h.update(str(path).encode())
        h.update(np.ascontiguousarray(np.asarray(leaf, np.float32)).tobytes())
    return h.hexdigest()[:16]


class _Reals:
    """The real batches, read from the iterator once, on the first `get`."""

    def __init__(self, real_images_iter, num_real):
        self._source, self._num, self._batches = real_images_iter, num_real, None

    def get(self, metric: str) -> list:
        if self._batches is None:
            if self._source is None:
                raise ValueError(f"evaluate: '{metric}' needs real images; real_images_iter is "
                                 "None (and no cached statistics)")
            self._batches = list(_real_batches(self._source, self._num))
        if not self._batches:
            raise ValueError(f"evaluate: '{metric}' needs real images; real_images_iter yielded "
                             "none")
        return self._batches


def _real_side(extract, reals, stats_names, keep, workdir, dataset_name, protocol_fn):
    """Real FeatureStats for `stats_names` (from the cache where possible) and kept real features,
    in at most one pass over the real images."""
    cache = workdir is not None and bool(dataset_name)
    paths = {f: stats_cache_path(workdir, dataset_name, protocol_fn(f)) for f in stats_names
             if cache}
    stats = {f: FeatureStats.load(p) for f, p in paths.items() if p.is_file()}
    missing = [f for f in stats_names if f not in stats]
    kept = {}
    if missing or keep:
        got, kept = accumulate(extract, reals.get("real statistics"), keep=keep, stats=missing)
        for f in missing:
            stats[f] = got[f]
            if cache:
                save_stats(got[f], paths[f])
    return stats, kept


def _inception_metrics(metrics, inception, gen, reals, mesh, workdir, dataset_name, num_real,
                       kid_subsets, kid_subset_size, is_splits, seed, fid_method) -> dict:
    """FID, KID, IS, sFID from one pass of the FID Inception over each image set."""
    names = sorted({_INCEPTION_FEATURE[m] for m in metrics if m in _INCEPTION_FEATURE})
    if not names:
        return {}
    extract = InceptionFeatures(inception, names, mesh)
    frechet_names = {m: f for m, f in (("fid", "pool3"), ("sfid", "sfid")) if m in metrics}
    keep = [f for m, f in (("kid", "pool3"), ("is", "logits_unbiased")) if m in metrics]
    gen_stats, gen_kept = accumulate(extract, gen, keep=keep, stats=list(frechet_names.values()))
    weights = fingerprint(inception) if workdir is not None else ""
    protocol = lambda f: f"inception/{weights}/{f}/tf1-bilinear-299/{num_real}"
    real_stats, real_kept = _real_side(extract, reals, list(frechet_names.values()),
                                       ["pool3"] if "kid" in metrics else [], workdir,
                                       dataset_name, protocol)
    out = {m: frechet.fid_from_stats(real_stats[f], gen_stats[f], fid_method)
           for m, f in frechet_names.items()}
    if "kid" in metrics:
        out["kid"], out["kid_std"] = kid(real_kept["pool3"], gen_kept["pool3"], kid_subsets,
                                         kid_subset_size, seed)
    if "is" in metrics:
        out["is"], out["is_std"] = inception_score(gen_kept["logits_unbiased"], is_splits,
                                                   seed=seed)
    return out


def _rfid(gen, reals, variables, rfid_seed, mesh, workdir, dataset_name, num_real,
          fid_method) -> float:
    """rFID (StyleGAN-XL §4.1): FID in pool3 of a randomly initialised Inception: `variables`
    (a saved file's), else the init from rfid_seed."""
    if variables is None:
        variables, weights = _rfid_variables(rfid_seed), f"seed{rfid_seed}"
    else:
        weights = fingerprint(variables) if workdir is not None else ""
    extract = InceptionFeatures(variables, ("pool3",), mesh)
    gen_stats = accumulate(extract, gen, stats=("pool3",))[0]["pool3"]
    protocol = lambda f: f"inception-random-{weights}/{f}/tf1-bilinear-299/{num_real}"
    real = _real_side(extract, reals, ["pool3"], [], workdir, dataset_name, protocol)[0]["pool3"]
    return frechet.fid_from_stats(real, gen_stats, fid_method)


def _rfid_variables(seed: int):
    """rFID's random Inception (cached there: initialising it compiles the whole net)."""
    from gan_zoo.convert.inception import rfid_variables  # noqa: PLC0415

    return rfid_variables(seed)
