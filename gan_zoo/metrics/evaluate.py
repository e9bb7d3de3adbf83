"""Sample-based evaluation: `evaluate(sample_fn, real_images_iter, metrics, num_samples, ...)`.

Streamed: generated images are drawn in batches from `sample_fn(key, n)` (keys folded from
`seed`) and each batch goes once through every requested metric's feature network; real images
are read once, the same way. Only features or running statistics are kept (FID/sFID/rFID:
FeatureStats; KID, IS, precision/recall, CLIP score: per-image feature vectors; SWD: its
Laplacian-pyramid descriptors; MS-SSIM: the pair values), never the images, so memory does not
grow with the images' size. Real FID / sFID / rFID statistics are cached in `workdir` when given,
keyed by dataset and protocol; on a cache hit the real images are not read for them.
"""

import hashlib
from typing import Callable, Iterable

import jax
import numpy as np

from gan_zoo.metrics import _checks, frechet
from gan_zoo.metrics import ms_ssim as ms_ssim_lib
from gan_zoo.metrics import swd as swd_lib
from gan_zoo.metrics.features import InceptionFeatures, save_stats, stats_cache_path, to_uint8
from gan_zoo.metrics.frechet import FeatureStats
from gan_zoo.metrics.inception_score import inception_score
from gan_zoo.metrics.kid import kid
from gan_zoo.metrics.precision_recall import precision_recall

METRICS = ("fid", "kid", "is", "sfid", "rfid", "pr", "swd", "ms_ssim", "clip_score")
_INCEPTION_FEATURE = {"fid": "pool3", "kid": "pool3", "is": "logits_unbiased", "sfid": "sfid"}
_FRECHET = (("fid", "pool3"), ("sfid", "sfid"))  # metric, Inception feature of its statistics


def _generated_batches(sample_fn, num_samples, batch_size, seed):
    """Yields (uint8 NHWC batch, prompts or None); batch i uses fold_in(PRNGKey(seed), i). A
    sample_fn of a text-conditional G returns (images, prompts)."""
    base = jax.random.PRNGKey(seed)
    for i, start in enumerate(range(0, num_samples, batch_size)):
        n = min(batch_size, num_samples - start)
        images, texts = sample_fn(jax.random.fold_in(base, i), n), None
        if isinstance(images, tuple) and len(images) == 2:
            images, texts = images[0], list(images[1])
        images = np.asarray(images)
        if images.dtype != np.uint8:
            images = to_uint8(images)  # float in [-1, 1]
        yield _checks.images(images, "evaluate: sample_fn output"), texts


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


class _Features:
    """Streams batches through `extract` (images -> {name: [N, D]}): FeatureStats for `stats`,
    the feature rows for `keep`; at most `limit` images (None: all)."""

    def __init__(self, extract: Callable, stats=(), keep=(), limit: int = None):
        self.extract, self.limit, self.count = extract, limit, 0
        self.stats = {k: None for k in stats}
        self.kept = {k: [] for k in keep}

    def update(self, batch, prompts=None) -> None:
        del prompts
        if self.limit is not None:
            batch = batch[:self.limit - self.count]
        if not len(batch) or not (self.stats or self.kept):
            return
        feats = self.extract(batch)
        for k in self.stats:
            if self.stats[k] is None:
                self.stats[k] = FeatureStats(feats[k].shape[1])
            self.stats[k].update(feats[k])
        for k in self.kept:
            self.kept[k].append(np.asarray(feats[k]))
        self.count += len(batch)

    def features(self, name: str) -> np.ndarray:
        return np.concatenate(self.kept[name])


class _SWD(swd_lib.Descriptors):
    """SWD descriptors of at most `limit` images (both sets need equally many)."""

    def __init__(self, rng, name, limit: int = None):
        super().__init__(rng, name)
        self.limit = limit

    def update(self, batch, prompts=None):
        del prompts
        if self.limit is not None:
            batch = batch[:self.limit - self.count]
        return super().update(batch) if len(batch) else self


class _MSSSIM:
    """MS-SSIM of random pairs of distinct images within each batch (the samples are i.i.d., so
    within-batch pairs are random pairs): about num_pairs * n / num_samples pairs per batch."""

    def __init__(self, num_pairs: int, num_samples: int, seed: int):
        self.pairs, self.total, self.values = num_pairs, num_samples, []
        self.rng = np.random.default_rng(seed)

    def update(self, batch, prompts=None) -> None:
        del prompts
        done = sum(len(v) for v in self.values)
        k = min(-(-self.pairs * len(batch) // self.total), self.pairs - done)
        if len(batch) < 2:
            raise ValueError(f"evaluate: 'ms_ssim' pairs images within a batch; got a batch of "
                             f"{len(batch)} (use batch_size >= 2 and num_samples >= 2)")
        if k > 0:
            _checks.images(batch, "evaluate: ms_ssim", channels=(1, 3), min_size=16)
            self.values.append(ms_ssim_lib.random_pairs(batch, k, self.rng))

    def result(self) -> float:
        return float(np.mean(np.concatenate(self.values)))


class _Clip:
    """CLIP image and prompt embeddings of each generated batch (StyleGAN-T's CLIP score)."""

    def __init__(self, embedder):
        self.embedder, self.img, self.txt = embedder, [], []

    def update(self, batch, prompts=None) -> None:
        if prompts is None:
            raise ValueError("evaluate: 'clip_score' needs prompts: sample_fn must return "
                             "(images, prompts) with one prompt string per image")
        if len(prompts) != len(batch):
            raise ValueError(f"clip_score: a batch of {len(batch)} images came with "
                             f"{len(prompts)} prompts")
        self.img.append(self.embedder.images(batch))
        self.txt.append(self.embedder.texts(prompts))

    def result(self) -> float:
        from gan_zoo.metrics import clip_score  # noqa: PLC0415

        return clip_score.clip_score(np.concatenate(self.img), np.concatenate(self.txt))


def evaluate(sample_fn: Callable, real_images_iter, metrics: Iterable[str], num_samples: int, *,
             inception=None, batch_size: int = 50, seed: int = 0, num_real: int = None,
             workdir=None, dataset_name: str = None, rfid_seed: int = 0, rfid_inception=None,
             pr_features=None, clip=None,
             kid_subsets: int = 100, kid_subset_size: int = 1000, is_splits: int = 10,
             ms_ssim_pairs: int = 10_000, mesh=None, fid_method: str = "sqrtm",
             real_protocol: str = "") -> dict:
    """Computes the requested metrics for `num_samples` generated images, streamed (see the
    module docstring): peak memory does not grow with the images of num_samples or num_real.

    Args:
      sample_fn: (key, n) -> n images NHWC, uint8 or float in [-1, 1] (converted like StyleGAN).
      real_images_iter: iterable of uint8 NHWC batches (or a no-argument callable returning one);
        unused (may be None) when only 'is' / 'ms_ssim' are requested or the stats are cached.
      metrics: names from METRICS: fid, kid, is, sfid, rfid, pr, swd, ms_ssim, clip_score.
      inception: FID Inception variables (`convert.inception.load_inception`), or a callable
        images -> {feature name: [N, D]} standing in for it (tests, other feature nets).
      rfid_inception: rFID's random Inception, loaded from its saved file (`load_inception`);
        None: drawn from `rfid_seed` (`convert.inception.rfid_variables`; rFID is only
        comparable across runs that use the same weights).
      num_real: how many real images to use (None: all the iterator yields; official
        fid50k_full / kid50k_full). pr and swd use the first num_samples of them (pr50k3 and
        SWD compare equally large sets).
      workdir, dataset_name, real_protocol: cache real FID/sFID/rFID statistics under
        workdir/metric_stats, keyed by dataset_name and the protocol (weights, feature,
        num_real and `real_protocol`, e.g. how the reals were read).
      pr_features: images -> [N, D] features for precision/recall (VGG16 fc2 in the protocol).
      clip: CLIP score's `clip_score.ClipEmbedder`; 'clip_score' needs a sample_fn returning
        (images, prompts), prompts being one string per image.
      ms_ssim_pairs: MS-SSIM pairs, drawn within each generated batch (needs batch_size >= 2).
      fid_method: 'sqrtm' (scipy, the protocol) or 'eigh' (same value for PSD, much faster).
    Returns:
      {'fid', 'kid', 'kid_std', 'is', 'is_std', 'sfid', 'rfid', 'precision', 'recall',
       'swd' (average x1e3), 'swd/<res>', 'ms_ssim', 'clip_score'} for the requested metrics.
    """
    metrics = tuple(dict.fromkeys(metrics))
    _check_metrics(metrics, inception, pr_features, clip)
    num_samples = _checks.positive_int(num_samples, "evaluate: num_samples")
    nets = _Nets(metrics, inception, rfid_inception, rfid_seed, mesh, workdir, num_real,
                 real_protocol)
    gen = _gen_sinks(metrics, nets, pr_features, clip, num_samples, seed, ms_ssim_pairs)
    for batch, prompts in _generated_batches(sample_fn, num_samples, batch_size, seed):
        for sink in gen.values():
            sink.update(batch, prompts)
    cache = _Cache(workdir, dataset_name)
    real_stats = {key: cache.load(nets.protocol(key)) for key in nets.frechet_keys()}
    real = _real_sinks(metrics, nets, pr_features, real_stats, num_samples, seed)
    if any(getattr(s, "stats", None) or getattr(s, "kept", None) or isinstance(s, _SWD)
           for s in real.values()):
        _feed_reals(real_images_iter, num_real, real, metrics)
    for key in nets.frechet_keys():
        if real_stats[key] is None:
            real_stats[key] = real[key[0]].stats[key[1]]
            cache.save(real_stats[key], nets.protocol(key))
    return _results(metrics, gen, real, real_stats, seed, fid_method, kid_subsets,
                    kid_subset_size, is_splits)


class _Nets:
    """The feature extractors the metrics need ('inception', 'rfid') and their cache protocols."""

    def __init__(self, metrics, inception, rfid_inception, rfid_seed, mesh, workdir, num_real,
                 real_protocol):
        self.metrics, self.extract, self.weights = metrics, {}, {}
        names = sorted({_INCEPTION_FEATURE[m] for m in metrics if m in _INCEPTION_FEATURE})
        if names:
            if callable(inception):
                self.extract["inception"] = inception
                self.weights["inception"] = "inception/" + getattr(
                    inception, "weights_id", type(inception).__qualname__)
            else:
                self.extract["inception"] = InceptionFeatures(inception, names, mesh)
                self.weights["inception"] = "inception/" + (
                    fingerprint(inception) if workdir is not None else "")
        if "rfid" in metrics:
            if rfid_inception is None:
                variables, weights = _rfid_variables(rfid_seed), f"seed{rfid_seed}"
            else:
                variables = rfid_inception
                weights = fingerprint(variables) if workdir is not None else ""
            self.extract["rfid"] = InceptionFeatures(variables, ("pool3",), mesh)
            self.weights["rfid"] = f"inception-random-{weights}"
        self.tail = f"tf1-bilinear-299/{num_real}" + (f"/{real_protocol}" if real_protocol else "")

    def frechet_keys(self) -> list:
        """(net, feature) pairs whose real statistics are needed (and cacheable)."""
        keys = [("inception", f) for m, f in _FRECHET if m in self.metrics]
        return keys + ([("rfid", "pool3")] if "rfid" in self.metrics else [])

    def protocol(self, key) -> str:
        net, feature = key
        return f"{self.weights[net]}/{feature}/{self.tail}"


def _gen_sinks(metrics, nets, pr_features, clip, num_samples, seed, ms_ssim_pairs) -> dict:
    sinks = {}
    if "inception" in nets.extract:
        sinks["inception"] = _Features(
            nets.extract["inception"], stats=[f for m, f in _FRECHET if m in metrics],
            keep=[f for m, f in (("kid", "pool3"), ("is", "logits_unbiased")) if m in metrics])
    if "rfid" in nets.extract:
        sinks["rfid"] = _Features(nets.extract["rfid"], stats=["pool3"])
    if "pr" in metrics:
        sinks["pr"] = _Features(lambda b: {"vgg": pr_features(b)}, keep=["vgg"])
    if "swd" in metrics:
        sinks["swd"] = _SWD(np.random.default_rng([seed, 1]), "swd: generated images")
    if "ms_ssim" in metrics:
        sinks["ms_ssim"] = _MSSSIM(ms_ssim_pairs, num_samples, seed)
    if "clip_score" in metrics:
        sinks["clip_score"] = _Clip(clip)
    return sinks


def _real_sinks(metrics, nets, pr_features, cached, num_samples, seed) -> dict:
    """The real side: statistics not in the cache, KID's kept pool3, pr and swd (first
    num_samples images)."""
    sinks = {}
    for net in ("inception", "rfid"):
        if net in nets.extract:
            stats = [f for (n, f), v in cached.items() if n == net and v is None]
            keep = ["pool3"] if net == "inception" and "kid" in metrics else []
            sinks[net] = _Features(nets.extract[net], stats=stats, keep=keep)
    if "pr" in metrics:
        sinks["pr"] = _Features(lambda b: {"vgg": pr_features(b)}, keep=["vgg"],
                                limit=num_samples)
    if "swd" in metrics:
        sinks["swd"] = _SWD(np.random.default_rng([seed, 0]), "swd: real images", num_samples)
    return sinks


def _feed_reals(real_images_iter, num_real, sinks, metrics) -> None:
    if real_images_iter is None:
        raise ValueError(f"evaluate: {list(metrics)} need real images; real_images_iter is None "
                         "(and no cached statistics)")
    seen = 0
    for batch in _real_batches(real_images_iter, num_real):
        for sink in sinks.values():
            sink.update(batch)
        seen += len(batch)
    if not seen:
        raise ValueError(f"evaluate: {list(metrics)} need real images; real_images_iter "
                         "yielded none")


def _results(metrics, gen, real, real_stats, seed, fid_method, kid_subsets, kid_subset_size,
             is_splits) -> dict:
    out = {}
    for m, f in _FRECHET:
        if m in metrics:
            out[m] = frechet.fid_from_stats(real_stats[("inception", f)],
                                            gen["inception"].stats[f], fid_method)
    if "rfid" in metrics:
        out["rfid"] = frechet.fid_from_stats(real_stats[("rfid", "pool3")],
                                             gen["rfid"].stats["pool3"], fid_method)
    if "kid" in metrics:
        out["kid"], out["kid_std"] = kid(real["inception"].features("pool3"),
                                         gen["inception"].features("pool3"), kid_subsets,
                                         kid_subset_size, seed)
    if "is" in metrics:
        out["is"], out["is_std"] = inception_score(gen["inception"].features("logits_unbiased"),
                                                   is_splits, seed=seed)
    if "pr" in metrics:
        out["precision"], out["recall"] = precision_recall(real["pr"].features("vgg"),
                                                           gen["pr"].features("vgg"))
    if "swd" in metrics:
        levels = swd_lib.distances(real["swd"], gen["swd"], np.random.default_rng(seed))
        out.update({f"swd/{k}": v for k, v in levels.items() if k != "avg"})
        out["swd"] = levels["avg"]
    if "ms_ssim" in metrics:
        out["ms_ssim"] = gen["ms_ssim"].result()
    if "clip_score" in metrics:
        out["clip_score"] = gen["clip_score"].result()
    return out


class _Cache:
    """Real FeatureStats in workdir/metric_stats (no-op without workdir and dataset_name)."""

    def __init__(self, workdir, dataset_name):
        self.on = workdir is not None and bool(dataset_name)
        self.workdir, self.dataset = workdir, dataset_name

    def load(self, protocol: str):
        if not self.on:
            return None
        path = stats_cache_path(self.workdir, self.dataset, protocol)
        return FeatureStats.load(path) if path.is_file() else None

    def save(self, stats: FeatureStats, protocol: str) -> None:
        if self.on:
            save_stats(stats, stats_cache_path(self.workdir, self.dataset, protocol))


def fingerprint(variables) -> str:
    """Short sha256 of a variables pytree (names the weights in the stats-cache protocol)."""
    h = hashlib.sha256()
    leaves = jax.tree_util.tree_leaves_with_path(variables)
    for path, leaf in sorted(leaves, key=lambda t: str(t[0])):
        h.update(str(path).encode())
        h.update(np.ascontiguousarray(np.asarray(leaf, np.float32)).tobytes())
    return h.hexdigest()[:16]


def _rfid_variables(seed: int):
    """rFID's random Inception (cached there: initialising it compiles the whole net)."""
    from gan_zoo.convert.inception import rfid_variables  # noqa: PLC0415

    return rfid_variables(seed)
