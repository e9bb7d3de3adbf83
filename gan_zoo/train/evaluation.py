"""Sample-based evaluation of a train state (`config.eval`): the CLI's `--mode=eval` and the
trainer's periodic evaluation. Generic over recipes: images come from `recipe.sample_fn` (EMA G,
standing statistics from `recipe.sampling_collections`), reals from the config's data source.

Weights are local files named in `config.eval` (`inception`, `vgg16`, `lpips`, `rfid_weights`,
`clip_weights`);
a metric whose weights are not configured is skipped with a log line naming the missing file
(rFID falls back to a random Inception drawn from `rfid_seed`, not comparable with published
rFID). PPL (`ppl`: W space, end points, no crop, eps = 1e-4, LPIPS-VGG16; the StyleGAN2
protocol) needs the recipe's W space (`train.w_space`: StyleGAN2/3); EQ-T (`eqt_int`,
`eqt_frac`) and EQ-R (`eqr`) also need G's input transform (StyleGAN3). Asking for them on
another recipe is a ValueError. W-space metrics are sharded over the mesh's 'data' axis.
"""

import functools
import hashlib
import json
import logging
import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from gan_zoo import data as gdata
from gan_zoo.train import sharding, w_space

log = logging.getLogger("gan_zoo.eval")

_NEEDS_INCEPTION = ("fid", "kid", "is", "sfid")
_INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth (or its state dict as .npz)"
_VGG16_FILE = "the NVlabs vgg16 / torchvision vgg16 state dict as .npz (convert.vgg16)"
_SAMPLE_KEY = 0xE7A1  # purpose tag: eval samples never reuse training keys
_EQ_METRICS = ("eqt_int", "eqt_frac", "eqr")  # StyleGAN3 App. E; need G's input transform
_W_METRICS = ("ppl",) + _EQ_METRICS  # computed from the recipe's W space, not sample_fn images
_LPIPS_FILE = "the lpips package's vgg.pth + VGG16 trunk as .npz (convert.vgg16.load_lpips)"
_CLIP_FILE = "an open_clip state dict (.safetensors/.npz) of config.eval.clip_model"


def metric_names(eval_cfg) -> tuple:
    """config.eval.metrics as a tuple: a comma-separated string or a sequence of names."""
    m = eval_cfg.metrics
    names = m.split(",") if isinstance(m, str) else list(m)
    return tuple(dict.fromkeys(n.strip() for n in names if n.strip()))


def resolve_metrics(eval_cfg, mesh=None) -> tuple[tuple, dict]:
    """(metrics to run, evaluate() keyword arguments): loads the configured weights and drops
    (with a log line) the metrics whose weights are not configured."""
    from gan_zoo.metrics import METRICS  # noqa: PLC0415

    names = metric_names(eval_cfg)
    known = METRICS + _W_METRICS
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"config.eval.metrics: unknown {unknown}; expected some of {known}")
    kwargs, keep = {}, list(names)
    needs = [n for n in names if n in _NEEDS_INCEPTION]
    if needs and not eval_cfg.get("inception", ""):
        log.warning("eval: skipping %s: set config.eval.inception to %s", needs, _INCEPTION_FILE)
        keep = [n for n in keep if n not in needs]
    elif needs:
        from gan_zoo.convert.inception import load_inception  # noqa: PLC0415
        kwargs["inception"] = load_inception(eval_cfg.inception)
    if "pr" in names and not eval_cfg.get("vgg16", ""):
        log.warning("eval: skipping pr: set config.eval.vgg16 to %s", _VGG16_FILE)
        keep.remove("pr")
    elif "pr" in names:
        kwargs["pr_features"] = vgg16_pr_features(eval_cfg.vgg16, mesh)
    if "ppl" in names and not eval_cfg.get("lpips", ""):
        log.warning("eval: skipping ppl: set config.eval.lpips to %s", _LPIPS_FILE)
        keep.remove("ppl")
    elif "ppl" in names:
        kwargs["ppl_distance"] = lpips_distance(eval_cfg.lpips, mesh)
    if "rfid" in names:
        kwargs.update(rfid_kwargs(eval_cfg))
    if "clip_score" in names and not eval_cfg.get("clip_weights", ""):
        log.warning("eval: skipping clip_score: set config.eval.clip_weights to %s", _CLIP_FILE)
        keep.remove("clip_score")
    elif "clip_score" in names:
        from gan_zoo.metrics import clip_score  # noqa: PLC0415
        kwargs["clip"] = clip_score.load_embedder(
            eval_cfg.clip_weights, eval_cfg.get("clip_model", clip_score.DEFAULT_MODEL), mesh)
    return tuple(keep), kwargs


def rfid_kwargs(eval_cfg) -> dict:
    """evaluate()'s rFID arguments: the saved random Inception of `config.eval.rfid_weights`
    (StyleGAN-XL §4.1: rFID is only comparable with one fixed, saved weights file), else a
    random init from `config.eval.rfid_seed` (logged: not comparable with published rFID)."""
    path = eval_cfg.get("rfid_weights", "")
    if path:
        from gan_zoo.convert.inception import load_inception  # noqa: PLC0415
        return {"rfid_inception": load_inception(path)}
    seed = eval_cfg.get("rfid_seed", 0)
    log.warning("eval: rfid from a random Inception drawn from config.eval.rfid_seed=%d (not "
                "comparable with published rFID; set config.eval.rfid_weights to a saved file)",
                seed)
    return {"rfid_seed": seed}


def vgg16_pr_features(path, mesh=None):
    """uint8 images -> VGG16 fc2 features [N, 4096] (improved precision/recall), from `path`."""
    from gan_zoo.convert import vgg16  # noqa: PLC0415
    from gan_zoo.metrics.features import sharded_batch_fn  # noqa: PLC0415

    variables = vgg16.load_vgg16(path)
    net = vgg16.vgg16_module(variables)
    return sharded_batch_fn(_fc2_relu(net), mesh, variables)


@functools.lru_cache(maxsize=None)
def _fc2_relu(net):
    """(variables, uint8 images) -> fc2_relu features; one function (one compile) per net."""
    return lambda variables, images: net.apply(variables, images)[1]["fc2_relu"]


def lpips_distance(path, mesh=None):
    """PPL's `distance` (a, b images in [0, 255] -> [N]) from an LPIPS-VGG16 .npz
    (`config.eval.lpips`), the pairs sharded over the mesh's 'data' axis (None: all devices)."""
    from gan_zoo.convert import vgg16  # noqa: PLC0415
    from gan_zoo.metrics.features import sharded_batch_fn  # noqa: PLC0415

    variables = vgg16.load_lpips(path)
    run = sharded_batch_fn(_lpips_pairs(vgg16.lpips_module(variables)), mesh, variables)
    return lambda a, b: run(np.concatenate([np.asarray(a), np.asarray(b)], axis=-1))


@functools.lru_cache(maxsize=None)
def _lpips_pairs(net):
    """(variables, [N, H, W, 6] = a | b) -> LPIPS [N]; one function (one compile) per net."""
    from gan_zoo.feature_nets import lpips  # noqa: PLC0415

    return lambda variables, ab: lpips.ppl_distance(variables, net)(ab[..., :3], ab[..., 3:])


def _batch_layout(state, batch_size: int, mesh=None):
    """The eval batch's layout -> (padded size, row sharding): batch_size rounded up to a multiple
    of the mesh's 'data' size; mesh None: the devices holding the state (a mesh of 1 for a
    single-device state)."""
    from gan_zoo.metrics.features import data_mesh  # noqa: PLC0415

    if mesh is None:
        mesh = data_mesh(sorted(jax.tree.leaves(state.params)[0].devices(), key=lambda d: d.id))
    shards = mesh.shape[sharding.DATA_AXIS]
    return -(-batch_size // shards) * shards, NamedSharding(mesh, PartitionSpec(sharding.DATA_AXIS))


def _to_host(images, n: int) -> np.ndarray:
    """The first n rows of a batch sharded over 'data' as numpy (other hosts' rows gathered)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils  # noqa: PLC0415
        images = multihost_utils.process_allgather(images, tiled=True)
    return np.asarray(jax.device_get(images))[:n]


def make_sample_fn(recipe, state, config, truncation: float, batch_size: int, mesh=None,
                   prompts=None):
    """(key, n) -> float images [n, H, W, 3] in [-1, 1] of the EMA G, random labels; one compile
    (batches are padded to batch_size, rounded up to a multiple of the mesh's 'data' size). The
    batch is sharded over 'data' (mesh None: the state's devices): each device draws its share
    once, none the whole batch. The samples do not depend on the mesh (jax.random values are
    counter-based: the same per index whatever the sharding or padding). prompts: one string per
    label (a text-conditional G's integer labels index its prompts): sample_fn then returns
    (images, [n] prompt strings), what CLIP score reads."""
    padded, rows = _batch_layout(state, batch_size, mesh)
    trunc = float(truncation)
    n_classes = max(recipe.n_classes, 1)
    base = jax.random.fold_in(jax.random.PRNGKey(config.seed), _SAMPLE_KEY)
    cols = state.collections["g"]
    if recipe.sampling_collections is not None:
        cols = jax.jit(recipe.sampling_collections, static_argnums=2)(
            state, jax.random.fold_in(base, 0), trunc)

    def labels_of(key):  # the batch's labels, the same in draw and on the host (prompts)
        return jax.random.randint(jax.random.split(key)[0], (padded,), 0, n_classes, jnp.int32)

    @functools.partial(jax.jit, out_shardings=rows)
    def draw(state, cols, key):
        labels = jax.lax.with_sharding_constraint(labels_of(key), rows)  # the batch over 'data'
        return recipe.sample_fn(state, jax.random.split(key)[1], labels, trunc, cols)
    host_labels = jax.jit(labels_of)

    def sample_fn(key, n):
        if n > batch_size:
            raise ValueError(f"eval sample_fn: n={n} > config.eval.batch_size={batch_size}")
        images = _to_host(draw(state, cols, key), n)
        if prompts is None:
            return images
        return images, [prompts[y] for y in np.asarray(host_labels(key))[:n]]
    # The generated resolution (a staged recipe, e.g. ProGAN mid-growth, samples below the data's).
    sample_fn.resolution = int(jax.eval_shape(draw, state, cols, base).shape[1])
    sample_fn.draw, sample_fn.args = draw, (state, cols)  # draw(*args, key): for inspection
    return sample_fn


def real_source(config):
    """The config's dataset as the FID protocol reads it (official fid50k_full: no x-flips)."""
    data_cfg = config.data.copy_and_resolve_references()
    if "flip" in data_cfg:
        data_cfg.flip = False
    return gdata.make_source(data_cfg, config.model.resolution, config.seed + 1)


def dataset_size(source):
    """Images in one pass over `source` when it knows (num_examples; data.path archives: their
    file count); None for sources sampling with replacement or of unknown length."""
    n = getattr(source, "num_examples", None)
    if n is None and hasattr(source, "archive"):
        n = len(source.archive.names)
    return n


def real_count(eval_cfg, source) -> tuple[int, str]:
    """(number of real images, protocol tag). Official fid50k_full / kid50k_full: the whole
    dataset, here capped by config.eval.num_real (0: no cap); a source that does not know its
    size gives num_real, else num_samples, images of its stream."""
    cap, size = eval_cfg.get("num_real", 0), dataset_size(source)
    if size is None:
        n = cap or eval_cfg.num_samples
        log.info("eval: the dataset's size is unknown; %d real images of its stream "
                 "(config.eval.num_real)", n)
        return n, "noflip-stream"
    return (min(size, cap), "noflip-full") if cap else (size, "noflip-full")


def dataset_key(config, resolution: int) -> str:
    """The stats cache's dataset key: data.name, data.path (name and hash) and resolution."""
    d, key = config.data, config.data.name
    path = d.get("path", "") if hasattr(d, "get") else ""
    if path:
        full = os.path.abspath(path)
        digest = hashlib.sha256(full.encode()).hexdigest()[:8]
        key += f"-{os.path.basename(full.rstrip(os.sep))}-{digest}"
    return f"{key}-{resolution}"


def real_batches(config, num: int, batch_size: int, resolution: int = 0, source=None):
    """Callable returning an iterator of `num` uint8 real images from the config's dataset (the
    training images in [-1, 1], box-averaged to `resolution` if it is lower, as the trainer feeds
    a staged recipe, then converted back like generated ones); source: default `real_source`."""
    from gan_zoo.metrics.features import to_uint8  # noqa: PLC0415

    r = config.model.resolution
    res = resolution or r
    if r % res:
        raise ValueError(f"eval: generated resolution {res} must divide config.model.resolution "
                         f"{r}")
    f = r // res

    def batches():
        it = (source or real_source(config)).batches(gdata.Layout(1, 1, batch_size), 0)
        seen = 0
        while seen < num:
            take = next(it)["image"].reshape(-1, r, r, 3)[:num - seen]  # [b, r, r, 3]
            take = take.reshape(-1, res, f, res, f, 3).mean(axis=(2, 4))  # [b, res, res, 3]
            seen += len(take)
            yield to_uint8(take)
    return batches


def evaluate_state(recipe, state, config, workdir: str, mesh=None, writer=None,
                   truncations=()) -> dict:
    """Runs config.eval on `state`; writes <workdir>/eval/metrics_<step>.json (host 0) and the
    values to `writer` under 'eval/<name>'. Returns the metric dict (with 'step').
    truncations: the sample metrics at each value (keys `sweep_key`, one log line each: the
    --mode=eval sweep of config.eval.truncation_sweep); () = at config.eval.truncation."""
    from gan_zoo.metrics.features import data_mesh  # noqa: PLC0415

    e = config.eval
    check_w_metrics(metric_names(e), recipe, config)
    devices = mesh.devices.reshape(-1) if mesh is not None else None
    eval_mesh = data_mesh(devices)
    names, kwargs = resolve_metrics(e, eval_mesh)
    step = int(jax.device_get(state.step))
    out = w_metrics(names, recipe, state, config, kwargs.pop("ppl_distance", None), eval_mesh)
    names = tuple(n for n in names if n not in _W_METRICS)
    run = functools.partial(sample_metrics, recipe, state, config, names, kwargs, workdir,
                            mesh, eval_mesh)
    for psi in truncations if names else ():
        at_psi = run(psi)
        log.info("eval at step %d, truncation %g: %s", step, psi, at_psi)
        out |= {sweep_key(k, psi): v for k, v in at_psi.items()}
    if names and not truncations:
        out |= run(e.truncation)
    out = {k: float(v) for k, v in out.items()}
    log.info("eval at step %d: %s", step, out)
    if writer is not None and out:
        writer.write_scalars(step, {f"eval/{k}": v for k, v in out.items()})
    if jax.process_index() == 0:
        write_json(workdir, step, out)
    return {"step": step, **out}


def sample_metrics(recipe, state, config, names, kwargs, workdir, mesh, eval_mesh,
                   truncation) -> dict:
    """The sample-based metrics `names` (evaluate()'s, kwargs from resolve_metrics) of the EMA G
    at one truncation; real statistics cached in <workdir>/eval (read once for a sweep)."""
    from gan_zoo import metrics  # noqa: PLC0415

    e = config.eval
    prompts = sample_prompts(recipe, config) if "clip_score" in names else None
    sample_fn = make_sample_fn(recipe, state, config, truncation, e.batch_size, mesh, prompts)
    source = real_source(config)
    num_real, protocol = real_count(e, source)
    out = metrics.evaluate(
        sample_fn, real_batches(config, num_real, e.batch_size, sample_fn.resolution, source),
        names, e.num_samples,
        batch_size=e.batch_size, seed=config.seed, num_real=num_real,
        workdir=os.path.join(workdir, "eval"),
        dataset_name=dataset_key(config, sample_fn.resolution), real_protocol=protocol,
        mesh=eval_mesh, fid_method=e.get("fid_method", "sqrtm"), **kwargs,
        **_small_set_kwargs(e.num_samples))
    return {k: float(v) for k, v in out.items()}


def sample_prompts(recipe, config) -> list:
    """CLIP score's prompts: config.sample.prompts, one per integer label of the recipe's
    sample_fn (StyleGAN-T: the label indexes them)."""
    prompts = list(config.sample.get("prompts", ()) or ())
    if len(prompts) != max(recipe.n_classes, 1):
        raise ValueError(f"config.eval.metrics: clip_score needs config.sample.prompts, one per "
                         f"label of recipe {config.recipe!r} ({recipe.n_classes}); got "
                         f"{len(prompts)}")
    return prompts


def truncation_sweep(eval_cfg) -> tuple:
    """config.eval.truncation_sweep ("1.0,0.9,0.7" or a sequence) as floats; () when empty."""
    raw = eval_cfg.get("truncation_sweep", "")
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    try:
        values = tuple(float(v) for v in items if str(v).strip())
    except ValueError:
        raise ValueError(f"config.eval.truncation_sweep: expected comma-separated numbers, "
                         f"e.g. '1.0,0.9,0.7', got {raw!r}") from None
    if len(set(values)) != len(values):
        raise ValueError(f"config.eval.truncation_sweep: repeated value in {raw!r}")
    return values


def sweep_key(name: str, truncation: float) -> str:
    """A metric's key at one truncation of the sweep: 'fid/psi_0.7', 'clip_score/psi_1'."""
    return f"{name}/psi_{truncation:g}"


def check_w_metrics(names, recipe, config) -> None:
    """ValueError when a W-space metric is asked of a recipe without a W space."""
    asked = [n for n in names if n in _W_METRICS]
    if asked and not w_space.has_w_space(recipe):
        raise ValueError(f"config.eval.metrics: {asked} need a W space (StyleGAN2/3); recipe "
                         f"{config.recipe!r} has none: remove {asked} from config.eval.metrics")


def w_metrics(names, recipe, state, config, ppl_distance, mesh=None) -> dict:
    """The W-space metrics among `names` (PPL, EQ-T, EQ-R) of the EMA G of `state`, over
    config.eval.num_samples samples (PPL: pairs), key PRNGKey(config.seed), sharded over the
    mesh's 'data' axis; config.eval.batch_size pairs per PPL call, config.eval.eq_batch_size
    images per EQ batch (one random transform each; latents from sample_w, so a conditional G's
    labels repeat in pairs within a batch, each uniform)."""
    from gan_zoo.metrics import equivariance  # noqa: PLC0415
    from gan_zoo.metrics import ppl as ppl_lib  # noqa: PLC0415

    asked = [n for n in names if n in _W_METRICS]
    if not asked:
        return {}
    e = config.eval
    space = w_space.w_space(recipe, state, state.collections["g"], e.batch_size, mesh)
    eq = [n for n in asked if n in _EQ_METRICS]
    if eq and space.synthesize_transformed is None:
        raise ValueError(f"config.eval.metrics: {eq} need G's input transform (StyleGAN3's "
                         f"Fourier-feature input); recipe {config.recipe!r} (model "
                         f"{config.model.get('variant', '?')!r}) has none: remove {eq} from "
                         "config.eval.metrics")
    key, out = jax.random.PRNGKey(config.seed), {}
    if "ppl" in asked:
        out["ppl"] = ppl_lib.ppl(space.synthesize, space.sample_w, ppl_distance, key,
                                 e.num_samples, batch_size=e.batch_size)
    for name in eq:
        out[name] = getattr(equivariance, name)(space.synthesize_transformed, space.sample_w,
                                                key, e.num_samples,
                                                batch_size=e.get("eq_batch_size", 4))
    return out


def _small_set_kwargs(num_samples: int) -> dict:
    """KID's subset size (1000) and IS's splits (10), capped for small sample counts."""
    return dict(kid_subset_size=min(1000, num_samples), is_splits=min(10, num_samples))


def write_json(workdir: str, step: int, values: dict) -> str:
    path = os.path.join(workdir, "eval", f"metrics_{step}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"step": step, **values}, f, indent=2, sort_keys=True)
    return path
