"""Feature extraction for the metrics: the FID Inception, sharded over a 'data' mesh axis, and a
workdir cache of dataset statistics keyed by dataset and protocol."""

import functools
import hashlib
import pathlib
from typing import Callable, Iterable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gan_zoo.feature_nets import inception_v3
from gan_zoo.metrics import _checks
from gan_zoo.metrics.frechet import FeatureStats
from gan_zoo.ops.conv2d_resample import cpu_compiler_options

# Features of `InceptionV3` by metric: the aux key each metric reads.
METRIC_FEATURES = {"fid": "pool3", "kid": "pool3", "is": "logits_unbiased", "sfid": "sfid",
                   "rfid": "pool3"}


def data_mesh(devices=None) -> Mesh:
    """A 1-D mesh over all (or the given) devices with axis 'data'."""
    return Mesh(np.asarray(devices if devices is not None else jax.devices()), ("data",))


# XLA:CPU (jax 0.10) sends convolutions to YNNPACK fusions by default; for the FID Inception the
# Eigen convolutions it falls back to without them are faster. One thread, batch 8, CPU time of the
# net's 36 conv shapes: YNNPACK 1.43 s, Eigen 0.89 s, torch 2.14 (oneDNN) 0.95 s; the whole net
# 0.63x the YNNPACK time (benchmarks/RESULTS.md "FID Inception speed"). Scoped to this jit:
# ops.conv2d_resample.cpu_compiler_options gives its EIGEN_CONV_OPTIONS on CPU meshes.


@functools.lru_cache(maxsize=None)
def _jit_sharded(fn: Callable, mesh: Mesh, with_params: bool, per_shard: bool = False,
                 options: tuple = ()):
    """jit(fn) with the batch on 'data' (and params replicated), cached per (fn, mesh). per_shard:
    fn runs on each device's rows inside jax.shard_map (for nets the partitioner cannot split,
    e.g. grouped convs whose groups are the samples, or Pallas kernels). options: XLA compile
    options of this jit only (see `cpu_compiler_options`)."""
    batch = NamedSharding(mesh, PartitionSpec("data"))
    replicated = NamedSharding(mesh, PartitionSpec())
    compiler_options = dict(options) or None
    if per_shard:
        specs = (PartitionSpec(), PartitionSpec("data")) if with_params else PartitionSpec("data")
        fn = jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=PartitionSpec("data"),
                           check_vma=False)
    if with_params:
        return jax.jit(fn, in_shardings=(replicated, batch), compiler_options=compiler_options)
    return jax.jit(fn, in_shardings=batch, compiler_options=compiler_options)


def chunk_sizes(n: int, shards: int, max_chunks: int = 1) -> list:
    """Padded sizes of the calls that process a batch of n: each a power of two (rounded up to a
    multiple of `shards`), so there are few distinct shapes and few compiles. Greedy: the largest
    power of two <= the rest, up to max_chunks calls, the last one padded up. max_chunks=1: one
    call padded to the next power of two (50 -> 64, 28% of the work wasted); 3: 50 -> 32 + 16 + 2,
    nothing wasted."""
    if n < 1 or shards < 1 or max_chunks < 1:
        raise ValueError(f"chunk_sizes: n, shards, max_chunks must be >= 1, got {n}, {shards}, "
                         f"{max_chunks}")
    sizes, rest = [], n
    while rest > 0:
        size = 1 << (rest.bit_length() - 1)  # largest power of two <= rest
        if size < shards or len(sizes) == max_chunks - 1:
            size = max(shards, 1 << (rest - 1).bit_length())  # last call: pad up
        size += (-size) % shards
        sizes.append(size)
        rest -= size
    return sizes


def sharded_batch_fn(fn: Callable, mesh: Mesh = None, params=None, per_shard: bool = False,
                     max_chunks: int = 1, compiler_options: dict = None) -> Callable:
    """jit(fn) with its batch argument sharded on 'data'. Runs the batch in `chunk_sizes(n,
    devices, max_chunks)` calls, padding the last with zeros, and strips the padding from every
    output (fn(batch), or fn(params, batch) when `params` is given -> pytree of [N, ...]; fn must
    treat samples independently). Weights passed as `params` are arguments, not compiled-in
    constants: a module-level fn compiles once per mesh (and call size) for every weight set.
    per_shard: run fn per device in jax.shard_map instead of letting XLA partition it.
    compiler_options: XLA options of this jit only (e.g. `cpu_compiler_options(mesh)`)."""
    mesh = mesh or data_mesh()
    shards = mesh.shape["data"]
    options = tuple(sorted((compiler_options or {}).items()))
    jitted = _jit_sharded(fn, mesh, params is not None, per_shard, options)

    def run(batch):
        n, start, outs = batch.shape[0], 0, []
        for size in chunk_sizes(n, shards, max_chunks):
            chunk = batch[start:start + size]
            if len(chunk) < size:
                pad = np.zeros((size - len(chunk),) + batch.shape[1:], batch.dtype)
                chunk = np.concatenate([chunk, pad])
            outs.append(jitted(chunk) if params is None else jitted(params, chunk))
            start += size
        out = jax.tree.map(lambda *a: np.concatenate([np.asarray(x) for x in a]), *outs)
        return jax.tree.map(lambda a: a[:n], out)
    return run


def _inception_forward(names: tuple, variables, images) -> dict:
    _, aux = inception_v3.InceptionV3().apply(variables, images)
    return {k: aux[k] for k in names}


class InceptionFeatures:
    """Callable: uint8 NHWC images -> {name: float32 [N, D]} for the requested feature names.

    variables: from `gan_zoo.convert.inception.load_inception(path)` (FID/KID/IS/sFID) or
    `rfid_variables(seed)` (rFID). Batches are sharded over the mesh's 'data' axis; one compile
    per mesh (and call size) serves every weight set and metric. A batch runs as at most 3
    power-of-two calls (`chunk_sizes`), on CPU with Eigen convolutions (`cpu_compiler_options`).
    """

    def __init__(self, variables, names=("pool3",), mesh: Mesh = None):
        unknown = set(names) - set(inception_v3.FEATURE_DIMS)
        if unknown:
            raise ValueError(f"InceptionFeatures: unknown features {sorted(unknown)}; expected "
                             f"some of {sorted(inception_v3.FEATURE_DIMS)}")
        self.names = tuple(names)
        shared = set(self.names) <= set(METRIC_FEATURES.values())
        fn = _metric_features if shared else _forward_for(tuple(sorted(self.names)))
        mesh = mesh or data_mesh()
        self._run = sharded_batch_fn(fn, mesh, variables, max_chunks=3,
                                     compiler_options=cpu_compiler_options(mesh))

    def __call__(self, images) -> dict:
        images = _checks.images(np.asarray(images), "InceptionFeatures")
        out = self._run(images)
        return {k: out[k] for k in self.names}


@functools.lru_cache(maxsize=None)
def _forward_for(names: tuple) -> Callable:
    return functools.partial(_inception_forward, names)


# Every metric feature comes out of one compiled function (FID, KID, IS, sFID, rFID share it).
_metric_features = _forward_for(tuple(sorted(set(METRIC_FEATURES.values()))))


def accumulate(extract: Callable, batches: Iterable, keep=(), stats=()) -> tuple[dict, dict]:
    """Streams image batches through `extract`.

    Returns ({name: FeatureStats} for names in `stats`, {name: [N, D] array} for names in `keep`).
    """
    acc, kept = {}, {k: [] for k in keep}
    for batch in batches:
        feats = extract(batch)
        for k in stats:
            acc.setdefault(k, FeatureStats(feats[k].shape[1])).update(feats[k])
        for k in keep:
            kept[k].append(feats[k])
    if not acc and not any(kept.values()) and (keep or stats):
        raise ValueError("accumulate: the image iterator yielded no batches")
    return acc, {k: np.concatenate(v) for k, v in kept.items()}


def stats_cache_path(workdir, dataset: str, protocol: str) -> pathlib.Path:
    """workdir/metric_stats/<dataset>-<protocol hash>.npz; the protocol string should name the
    network weights, the feature and the number of images ('inception-2015-12-05/pool3/50k')."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in dataset)
    digest = hashlib.sha256(protocol.encode()).hexdigest()[:16]
    return pathlib.Path(workdir) / "metric_stats" / f"{safe}-{digest}.npz"


def save_stats(stats: FeatureStats, path) -> None:
    """Writes FeatureStats atomically (temporary file, then rename)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    stats.save(tmp)
    tmp.replace(path)


def cached_stats(workdir, dataset: str, protocol: str, compute: Callable[[], FeatureStats]):
    """FeatureStats of a dataset from the workdir cache, computing and saving them on a miss."""
    if workdir is None:
        return compute()
    path = stats_cache_path(workdir, dataset, protocol)
    if path.is_file():
        return FeatureStats.load(path)
    stats = compute()
    save_stats(stats, path)
    return stats


def to_uint8(images) -> np.ndarray:
    """Float images in [-1, 1] (NHWC) -> uint8 as StyleGAN's metrics do: x * 127.5 + 128, clipped
    to [0, 255], truncated."""
    x = np.asarray(images, np.float32)
    if not np.all(np.isfinite(x)):
        raise ValueError("to_uint8: generated images contain NaN or Inf")
    return np.clip(x * 127.5 + 128, 0, 255).astype(np.uint8)
