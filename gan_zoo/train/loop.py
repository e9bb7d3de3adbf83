"""The one training loop: `run(config, workdir)` trains any recipe, resuming from the workdir."""

import dataclasses
import functools
import json
import logging
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp

from gan_zoo import checks, recipes
from gan_zoo import data as gdata
from gan_zoo.recipes.base import Stage
from gan_zoo.train import checkpoint, evaluation, progress, sharding, signals, step, writers
from gan_zoo.train import workdir as workdir_lib

log = logging.getLogger("gan_zoo.train")


# The configs' "not set" values of config.distributed_args (left to JAX's auto-detection).
_UNSET_DISTRIBUTED_ARGS = {"coordinator_address": "", "num_processes": 0, "process_id": -1}


def maybe_init_distributed(config) -> None:
    """jax.distributed.initialize() on multi-host runs (config.distributed), before any JAX use.

    Arguments come from the optional mapping config.distributed_args (coordinator_address,
    num_processes, process_id, ...); without it JAX detects the cluster (TPU, Slurm, Open MPI).
    """
    # Not jax.process_count(): it would start the backend, and initialize() must come first.
    if config.get("distributed", False) and not jax.distributed.is_initialized():
        args = {k: v for k, v in dict(config.get("distributed_args", None) or {}).items()
                if v is not None and v != _UNSET_DISTRIBUTED_ARGS.get(k)}
        jax.distributed.initialize(**args)


def make_run_recipe(config, networks=None):
    """The recipe of config.recipe. networks: (G, D) modules; default: from config.networks
    (official kwargs) or config.model."""
    if networks is None and config.get("networks", ""):
        from gan_zoo.convert import network_spec  # noqa: PLC0415

        networks = network_spec.load_networks(config.networks)
    return recipes.make_recipe(config, networks)


@dataclasses.dataclass(frozen=True)
class StateLayout:
    """A recipe's state layout: the abstract state (ShapeDtypeStructs with shardings), the
    shardings, and init() -> a fresh placed state."""

    abstract: Any
    shardings: Any
    init: Callable


def state_layout(recipe, config, mesh) -> StateLayout:
    """Shapes of recipe.init_state by eval_shape, then shardings from config.param_rules."""
    init = functools.partial(recipe.init_state, config=config)
    rng = jax.random.PRNGKey(config.seed)
    abstract = jax.eval_shape(init, rng)
    shardings = sharding.state_shardings(abstract, mesh, config.get("param_rules", ()))
    abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                            abstract, shardings)
    def fresh():
        state = jax.jit(init, out_shardings=shardings)(rng)
        if recipe.load_frozen is not None:  # weight files: read on the host, placed after
            state = jax.device_put(recipe.load_frozen(state), shardings)
        return state
    return StateLayout(abstract, shardings, fresh)


class StageLayouts:
    """State layouts per Stage.key, computed at first use: the stages of a staged run may differ
    in shape (StyleGAN-XL's generator grows; ProGAN's stages share one shape)."""

    def __init__(self, recipe, config, mesh):
        self.recipe, self.config, self.mesh, self._cache = recipe, config, mesh, {}

    def __call__(self, stage: Stage) -> StateLayout:
        if stage.key not in self._cache:
            self._cache[stage.key] = state_layout(recipe_of(self.recipe, stage), self.config,
                                                  self.mesh)
        return self._cache[stage.key]

    def at_step(self, step: int) -> StateLayout:
        """The layout of the state saved after train step `step`."""
        return self(stage_of(self.recipe, self.config, step))

    def abstract_at(self, step: int):
        return self.at_step(step).abstract


def build_state(config, mesh, networks=None):
    """(recipe, abstract state with shardings, shardings, init fn) of the run's base recipe
    (staged runs: see StageLayouts for the state of each stage)."""
    recipe = make_run_recipe(config, networks)
    layout = state_layout(recipe, config, mesh)
    return recipe, layout.abstract, layout.shardings, layout.init


@dataclasses.dataclass(frozen=True)
class SourceRun:
    """The latest checkpoint of another run (config.init_from), read with its own saved config:
    `recipe` is the recipe of the stage that checkpoint is in."""

    workdir: str
    config: Any  # ml_collections.ConfigDict, from the checkpoint's saved config
    recipe: Any
    state: Any
    step: int


def _best_keeper(config, workdir: str, eval_every: int):
    """checkpoint.BestKeeper of config.checkpoint.best_metric ('' or absent: None)."""
    metric = config.checkpoint.get("best_metric", "")
    if not metric:
        return None
    if not eval_every:
        log.warning("config.checkpoint.best_metric=%r needs periodic evaluation: set "
                    "config.eval.every > 0 (no best checkpoint is kept)", metric)
        return None
    return checkpoint.BestKeeper(workdir, metric, config.checkpoint.get("best_mode", ""))


def restore_run(config, workdir: str, mesh, networks=None, step=None):
    """(recipe of the checkpoint's stage, state, step) of the checkpoint at `step` ('latest' or
    None: the newest that restores; 'best': config.checkpoint.best_metric's; or a step number)
    in workdir, with the shapes of that step's stage. For sampling, eval and tools."""
    recipe = make_run_recipe(config, networks)
    layouts = StageLayouts(recipe, config, mesh)
    ckpt, step = checkpoint.open_for_step(workdir, config.checkpoint.keep, step)
    try:
        state = ckpt.restore(layouts.abstract_at, step)
    except workdir_lib.IncompatibleState as e:
        raise workdir_lib.incompatible_error(e, config, ckpt) from None
    finally:
        ckpt.close()
    step = int(jax.device_get(state.step))
    return recipe_of(recipe, stage_of(recipe, config, step)), state, step


def load_source_run(init_from: str, mesh) -> SourceRun:
    """The latest checkpoint of workdir `init_from`, with the config saved beside it."""
    import ml_collections  # noqa: PLC0415

    src = checkpoint.Checkpointer(init_from, 1, False)
    try:
        step = src.latest_step()
        if step is None:
            raise FileNotFoundError(f"config.init_from={init_from}: no checkpoint in "
                                    f"{src.directory}")
        src_config = ml_collections.ConfigDict(src.restore_config(step))
    finally:
        src.close()
    recipe, state, step = restore_run(src_config, init_from, mesh)
    return SourceRun(init_from, src_config, recipe, state, step)


def restore_or_init(ckpt, abstract, init, init_from: str = "", recipe=None, mesh=None):
    """The latest checkpoint if there is one, else a fresh state (warm-started from the
    networks of workdir `init_from` when given: by recipe.warm_start when the recipe has one).
    abstract: an abstract state, or step -> abstract state (staged runs)."""
    if ckpt.latest_step() is not None:
        state = ckpt.restore(abstract)  # the newest checkpoint that restores
        log.info("Resuming from %s, step %d", ckpt.directory, int(jax.device_get(state.step)))
        return state
    state = init()
    if not init_from:
        return state
    if recipe is not None and recipe.warm_start is not None:
        src = load_source_run(init_from, mesh)
        log.info("Starting from the networks of %s, step %d", init_from, src.step)
        return recipe.warm_start(state, src)
    return warm_start(state, abstract(0) if callable(abstract) else abstract, init_from)


def warm_start(state, abstract, init_from: str):
    """`state` with G, D, G_ema and the model collections of init_from's latest checkpoint;
    the optimizer, step, rng and recipe scalars stay fresh (fine-tuning)."""
    src = checkpoint.Checkpointer(init_from, 1, False)
    step = src.latest_step()
    if step is None:
        src.close()
        raise FileNotFoundError(f"config.init_from={init_from}: no checkpoint in {src.directory}")
    try:
        old = src.restore(abstract)
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"config.init_from={init_from}: its checkpoint does not match this "
                         f"config's networks (same config.model / config.networks needed): "
                         f"{e}") from e
    finally:
        src.close()
    log.info("Starting from the networks of %s, step %d", src.directory, step)
    return state.replace(params=old.params, ema_params=old.ema_params,
                         collections=old.collections)


def make_grid_fn(recipe, config):
    """Jitted (state) -> samples of the EMA G with fixed z and labels (and standing stats)."""
    n = config.log.grid_size
    labels = jnp.arange(n, dtype=jnp.int32) % max(recipe.n_classes, 1)
    key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0x6121D)  # fixed across the run
    trunc = float(config.sample.truncation)

    def grid(state):
        cols = state.collections["g"]
        if recipe.sampling_collections is not None:
            cols = recipe.sampling_collections(state, jax.random.fold_in(key, 1), trunc)
        return recipe.sample_fn(state, key, labels, trunc, cols)
    return jax.jit(grid)


def stage_of(recipe, config, step: int) -> Stage:
    """The stage of train step `step` (a host int): recipe.stage_fn(step), else the run's only
    stage."""
    if recipe.stage_fn is None:
        return Stage("", None, config.train.batch_size, config.model.resolution)
    return recipe.stage_fn(step)


def recipe_of(recipe, stage: Stage):
    """The recipe that runs `stage` (`recipe` itself when it has no stages)."""
    return recipe if recipe.stage_recipe is None else recipe.stage_recipe(stage.key)


# The stop-signal handler (SIGTERM / SIGINT); the name is kept for callers and tests.
_Sigterm = signals.StopSignal


def _check_finite(finite, first_step: int, last_step: int, ckpt) -> None:
    if not bool(jax.device_get(finite)):
        good = ckpt.latest_step()
        raise FloatingPointError(
            f"non-finite loss or gradient norm between steps {first_step} and {last_step}; "
            f"stopping. The last good checkpoint (step {good}) in {ckpt.directory} is untouched.")


def _host_metrics(metrics: dict) -> dict:
    """Metrics as floats, without NaNs (a lazy phase that has not run yet in this process)."""
    return {k: float(v) for k, v in jax.device_get(metrics).items() if v == v}


def _write_scalars(writer, step_no: int, metrics: dict, ips: float, eta_s: float) -> None:
    scalars = {k: v for k, v in _host_metrics(metrics).items() if k != "finite"}
    scalars.update({"perf/images_per_sec": ips, "perf/eta_hours": eta_s / 3600.0})
    writer.write_scalars(step_no, scalars)


def _holding_workdir_lock(train_fn):
    """train_fn holding <workdir>/run.lock (workdir.RunLock): one training run per workdir."""

    @functools.wraps(train_fn)
    def locked(config, workdir: str, *args, **kwargs):
        maybe_init_distributed(config)  # before jax.process_index() in lock_for
        with workdir_lib.lock_for(config, workdir):
            return train_fn(config, workdir, *args, **kwargs)
    return locked


@_holding_workdir_lock
def run(config, workdir: str, networks=None, stop_after: int = 0):
    """Trains config.recipe for config.train.num_steps steps in workdir; resumes automatically.

    networks: optional (G, D) modules replacing the recipe's defaults (tests). stop_after > 0
    stops (with a checkpoint) after that many steps of this call, as if interrupted.
    Returns (state, history): history is a list of (step, metrics dict) at each log step.
    """
    # ----- Mesh -----
    checks.check_run_config(config)  # non-positive steps, batch sizes, intervals: before any work
    gdata.check_prepared(config.data, config.model.resolution)  # data.path / how to prepare
    maybe_init_distributed(config)
    if config.get("matmul_precision", ""):
        jax.config.update("jax_default_matmul_precision", config.matmul_precision)
    mesh = sharding.make_mesh(config.mesh)
    is_main = jax.process_index() == 0

    # ----- State -----
    recipe = make_run_recipe(config, networks)
    layouts = StageLayouts(recipe, config, mesh)  # abstract state + shardings per stage
    t = config.train
    num_steps = recipe.num_steps or t.num_steps
    checks.check_num_steps(num_steps, bool(recipe.num_steps))

    # ----- Restore -----
    ckpt = checkpoint.Checkpointer(workdir, config.checkpoint.keep, config.checkpoint.use_async)
    state = workdir_lib.restore_checked(  # other shapes: stop naming the keys, or allow_reset
        lambda: restore_or_init(ckpt, layouts.abstract_at, layouts.at_step(0).init,
                                config.get("init_from", ""), recipe, mesh), config, ckpt)
    start = int(jax.device_get(state.step))
    workdir_lib.record_config(config, workdir, start, is_main)  # config.json after the checks

    # ----- Data -----
    source = gdata.make_source(config.data, config.model.resolution, config.seed)
    note = checks.check_data_classes(getattr(source, "n_classes", 0),  # captions: none
                                     recipe.n_classes, config.data)
    if note and is_main:
        log.info(note)
    in_sharding = sharding.batch_sharding(mesh)

    def stream(stage: Stage, from_step: int):
        """Device batches of `stage` from train step `from_step` on (sources index by step)."""
        what = f"stage {stage.name} batch size" if stage.name else "train.batch_size"
        if stage.batch_size % t.grad_accum:
            raise ValueError(f"{what}={stage.batch_size} must be divisible by "
                             f"train.grad_accum={t.grad_accum}")
        if (stage.batch_size // t.grad_accum) % sharding.batch_devices(mesh):
            raise ValueError(f"{what}={stage.batch_size} / train.grad_accum must be divisible "
                             f"by the {sharding.batch_devices(mesh)} devices of mesh axes "
                             f"{sharding.batch_axes(mesh)} (config.mesh)")
        layout = gdata.Layout(recipe.real_batches_per_step, t.grad_accum,
                              stage.batch_size // t.grad_accum, jax.process_index(),
                              jax.process_count())
        # Staged runs get the data at full resolution: the recipe pools it on the device.
        return gdata.prefetch_to_devices(source.batches(layout, from_step), in_sharding,
                                         config.data.prefetch)

    stage, batches = stage_of(recipe, config, start), None  # batches: opened at first use

    # ----- Step -----
    compiled = {}  # Stage.key -> (jitted train step, jitted grid fn), built at first use

    def compiled_for(stage: Stage):
        if stage.key not in compiled:
            r = recipe_of(recipe, stage)
            compiled[stage.key] = (step.make_train_step(r, t.grad_accum,
                                                        layouts(stage).shardings, in_sharding,
                                                        t.get("xla_cpu_convs", step.CPU_CONVS[0])),
                                   make_grid_fn(r, config))
        return compiled[stage.key]

    def sv_paths_of(state):  # kernels whose top singular values are logged
        return {g: writers.monitored_kernels(state.params[g], config.log.sv_layers)
                for g in state.params}

    sv_paths = sv_paths_of(state)
    writer = writers.make_writer(workdir, is_main)

    # ----- Loop -----
    sigterm, history, shown = _Sigterm(), [], {}
    end = num_steps if stop_after <= 0 else min(num_steps, start + stop_after)
    finite, checked, t0, t0_step = jnp.array(True), start, time.time(), start
    lg, cfg_dict = config.log, json.loads(config.to_json_best_effort())
    eval_every = config.eval.every if "eval" in config else 0  # periodic config.eval metrics
    best = _best_keeper(config, workdir, eval_every)
    saved, bar = start, progress.console_is_terminal()  # saved: step of the newest checkpoint

    def save(at: int) -> None:
        """The checkpoint of step `at` (once), after the finiteness check since the last one."""
        nonlocal checked, saved
        if saved != at:
            _check_finite(finite, checked, at, ckpt)
            checked = saved = at
            ckpt.save(at, state, cfg_dict)

    try:
        for s in range(start, end):
            ckpt.check()  # an async save that failed (already reported) stops the run here
            # A stop signal is read before any other work of the step: save first, then exit.
            if sigterm.stop(s):
                save(s)  # nothing new before the first step
                log.warning("%s: saved a checkpoint at step %d; exiting", sigterm.name, s)
                break
            if batches is None:
                batches = stream(stage, s)
            train_step, grid_fn = compiled_for(stage)
            state, metrics = train_step(state, next(batches))
            finite = jnp.logical_and(finite, metrics["finite"])
            if any(k.startswith(step.RAN) for k in metrics):  # lazy phases: last values shown
                metrics = shown = step.carry_lazy(shown, metrics)
            done = s + 1
            stopping = sigterm.stop(done)
            last = done == end or stopping
            images_per_step = recipe.real_batches_per_step * stage.batch_size
            if recipe.stage_fn is not None:  # staged run: next stage, grid at each stage end
                new = stage_of(recipe, config, done)  # host math: no wait on the device
                if new.name != stage.name:
                    if not stopping:  # a stopping run saves first and renders nothing
                        # The next stage's G (ProGAN: at α = 0, the ended stage's output
                        # upsampled) when it runs on this state; else the ending stage's.
                        end_grid = (compiled_for(new)[1] if _same_shapes(layouts(stage),
                                                                         layouts(new)) else grid_fn)
                        _write_grid(writer, workdir, done, end_grid(state), is_main,
                                    f"_end_{stage.name}")
                    if recipe.stage_start is not None:
                        state = jax.device_put(recipe.stage_start(state, new),
                                               layouts(new).shardings)
                        if new.key != stage.key:
                            sv_paths = sv_paths_of(state)
                if new.batch_size != stage.batch_size:
                    batches.close()
                    batches = None  # reopened with the new layout by the next step
                stage, grid_fn = new, compiled_for(new)[1]
                metrics = dict(metrics, **_stage_scalars(stage, state))
            if done % lg.every_steps == 0 or last:
                _check_finite(finite, checked, done, ckpt)
                checked = done
                ips = images_per_step * (done - t0_step) / max(time.time() - t0, 1e-9)
                eta = (num_steps - done) * images_per_step / max(ips, 1e-9)
                _write_scalars(writer, done, metrics, ips, eta)
                history.append((done, _host_metrics(metrics)))
                t0, t0_step = time.time(), done
                if is_main:
                    log.info("%s", progress.progress_line(done, num_steps, ips, eta,
                                                          history[-1][1], stage.name, bar))
            # The checkpoint comes before grids and evaluations, which a stop signal skips.
            stopping = stopping or sigterm.stop(done)
            if done % config.checkpoint.every_steps == 0 or last or stopping:
                save(done)
            if stopping:
                log.warning("%s: saved a checkpoint at step %d; exiting", sigterm.name, done)
                break
            if lg.sv_every_steps and done % lg.sv_every_steps == 0:
                for g, paths in sv_paths.items():
                    sv = writers.top_singular_values_jit(state.params[g], tuple(paths), 3)
                    writer.write_scalars(done, {f"{g}/{k}": float(v) for k, v in sv.items()})
            if lg.image_every_steps and (done % lg.image_every_steps == 0 or last):
                _write_grid(writer, workdir, done, grid_fn(state), is_main)
            if eval_every and done % eval_every == 0:
                values = evaluation.evaluate_state(recipe_of(recipe, stage), state, config,
                                                   workdir, mesh, writer)
                if best is not None:  # config.checkpoint.best_metric: keep the best beside
                    best.update(done, state, cfg_dict, values)
    # ----- Save -----
    finally:
        if batches is not None:
            batches.close()  # stops the prefetch thread before the interpreter exits
        ckpt.wait()
        writer.flush()
        sigterm.restore()
    return state, history


def _same_shapes(a: StateLayout, b: StateLayout) -> bool:
    """Whether two stages' states have the same tree, shapes and dtypes."""
    shapes = lambda x: jax.tree.map(lambda v: (v.shape, v.dtype), x.abstract)  # noqa: E731
    return a is b or shapes(a) == shapes(b)


def _stage_scalars(stage: Stage, state) -> dict:
    """Logged per staged step: the stage's resolution and batch, and the recipe scalars (α)."""
    return {"stage/resolution": stage.resolution, "stage/batch_size": stage.batch_size,
            **{f"state/{k}": v for k, v in state.scalars.items()}}


def _write_grid(writer, workdir: str, step_no: int, images, is_main: bool,
                suffix: str = "") -> None:
    """EMA sample grid to TensorBoard and <workdir>/samples/<step><suffix>.png."""
    grid = writers.image_grid(jax.device_get(images))
    writer.write_images(step_no, {f"samples/ema{suffix}": grid[None]})
    if is_main:
        writers.save_png(os.path.join(workdir, "samples", f"{step_no:08d}{suffix}.png"), grid)

