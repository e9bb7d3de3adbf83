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
    return _Run(config, workdir, networks).train(stop_after)


class _Run:
    """One call of `run`: the mesh, recipe and restored state, the data, the compiled steps and
    the writers, with the loop's bookkeeping (the stage, the newest checkpoint, the finiteness
    since the last check, the throughput clock)."""

    def __init__(self, config, workdir: str, networks=None):
        checks.check_run_config(config)  # non-positive steps, batch sizes, intervals: first
        gdata.check_prepared(config.data, config.model.resolution)  # data.path / how to prepare
        maybe_init_distributed(config)
        if config.get("matmul_precision", ""):
            jax.config.update("jax_default_matmul_precision", config.matmul_precision)
        self.config, self.workdir, self.t = config, workdir, config.train
        self.mesh = sharding.make_mesh(config.mesh)
        self.is_main = jax.process_index() == 0
        self.recipe = make_run_recipe(config, networks)
        self.layouts = StageLayouts(self.recipe, config, self.mesh)  # abstract state per stage
        self.num_steps = self.recipe.num_steps or self.t.num_steps
        checks.check_num_steps(self.num_steps, bool(self.recipe.num_steps))
        self._restore()
        self.source = gdata.make_source(config.data, config.model.resolution, config.seed)
        note = checks.check_data_classes(getattr(self.source, "n_classes", 0),  # captions: none
                                         self.recipe.n_classes, config.data)
        if note and self.is_main:
            log.info(note)
        self.in_sharding = sharding.batch_sharding(self.mesh)
        self.stage, self.batches = stage_of(self.recipe, config, self.start), None  # lazy batches
        self.compiled = {}  # Stage.key -> (jitted train step, jitted grid fn), built at first use
        self.sv_paths = self._sv_paths()
        self.writer = writers.make_writer(workdir, self.is_main)
        self.history, self.shown = [], {}  # shown: the lazy phases' last values

    def _restore(self) -> None:
        """The workdir's newest checkpoint (or config.init_from, or a fresh init) -> self.state."""
        self.ckpt = checkpoint.Checkpointer(self.workdir, self.config.checkpoint.keep,
                                            self.config.checkpoint.use_async)
        self.state = workdir_lib.restore_checked(  # other shapes: stop naming the keys, or reset
            lambda: restore_or_init(self.ckpt, self.layouts.abstract_at,
                                    self.layouts.at_step(0).init, self.config.get("init_from", ""),
                                    self.recipe, self.mesh), self.config, self.ckpt)
        self.start = int(jax.device_get(self.state.step))
        workdir_lib.record_config(self.config, self.workdir, self.start, self.is_main)
        self.finite, self.checked, self.saved = jnp.array(True), self.start, self.start
        self.cfg_dict = json.loads(self.config.to_json_best_effort())

    def _stream(self, stage: Stage, from_step: int):
        """Device batches of `stage` from train step `from_step` on (sources index by step)."""
        t, mesh = self.t, self.mesh
        what = f"stage {stage.name} batch size" if stage.name else "train.batch_size"
        if stage.batch_size % t.grad_accum:
            raise ValueError(f"{what}={stage.batch_size} must be divisible by "
                             f"train.grad_accum={t.grad_accum}")
        if (stage.batch_size // t.grad_accum) % sharding.batch_devices(mesh):
            raise ValueError(f"{what}={stage.batch_size} / train.grad_accum must be divisible "
                             f"by the {sharding.batch_devices(mesh)} devices of mesh axes "
                             f"{sharding.batch_axes(mesh)} (config.mesh)")
        layout = gdata.Layout(self.recipe.real_batches_per_step, t.grad_accum,
                              stage.batch_size // t.grad_accum, jax.process_index(),
                              jax.process_count())
        # Staged runs get the data at full resolution: the recipe pools it on the device.
        return gdata.prefetch_to_devices(self.source.batches(layout, from_step), self.in_sharding,
                                         self.config.data.prefetch)

    def _compiled_for(self, stage: Stage):
        if stage.key not in self.compiled:
            r = recipe_of(self.recipe, stage)
            self.compiled[stage.key] = (
                step.make_train_step(r, self.t.grad_accum, self.layouts(stage).shardings,
                                     self.in_sharding,
                                     self.t.get("xla_cpu_convs", step.CPU_CONVS[0])),
                make_grid_fn(r, self.config))
        return self.compiled[stage.key]

    def _sv_paths(self) -> dict:
        """Per network, the kernels whose top singular values are logged."""
        return {g: writers.monitored_kernels(self.state.params[g], self.config.log.sv_layers)
                for g in self.state.params}

    def _save(self, at: int) -> None:
        """The checkpoint of step `at` (once), after the finiteness check since the last one."""
        if self.saved != at:
            _check_finite(self.finite, self.checked, at, self.ckpt)
            self.checked = self.saved = at
            self.ckpt.save(at, self.state, self.cfg_dict)

    def train(self, stop_after: int):
        """Steps until num_steps (or stop_after steps, or a stop signal) -> (state, history)."""
        end = self.num_steps if stop_after <= 0 else min(self.num_steps, self.start + stop_after)
        self.eval_every = self.config.eval.every if "eval" in self.config else 0
        self.best = _best_keeper(self.config, self.workdir, self.eval_every)
        self.bar, self.sigterm = progress.console_is_terminal(), _Sigterm()
        self.t0, self.t0_step = time.time(), self.start
        try:
            for s in range(self.start, end):
                self.ckpt.check()  # an async save that failed (already reported) stops here
                # A stop signal is read before any other work of the step: save first, then exit.
                if self.sigterm.stop(s):
                    self._save(s)  # nothing new before the first step
                    log.warning("%s: saved a checkpoint at step %d; exiting", self.sigterm.name, s)
                    break
                if self._step(s, end):
                    break
        finally:
            if self.batches is not None:
                self.batches.close()  # stops the prefetch thread before the interpreter exits
            self.ckpt.wait()
            self.writer.flush()
            self.sigterm.restore()
        return self.state, self.history

    def _step(self, s: int, end: int) -> bool:
        """Train step s, then its log, checkpoint, grid and evaluation -> whether to stop."""
        if self.batches is None:
            self.batches = self._stream(self.stage, s)
        self.state, metrics = self._compiled_for(self.stage)[0](self.state, next(self.batches))
        self.finite = jnp.logical_and(self.finite, metrics["finite"])
        if any(k.startswith(step.RAN) for k in metrics):  # lazy phases: last values shown
            metrics = self.shown = step.carry_lazy(self.shown, metrics)
        done = s + 1
        stopping = self.sigterm.stop(done)
        last = done == end or stopping
        images_per_step = self.recipe.real_batches_per_step * self.stage.batch_size
        if self.recipe.stage_fn is not None:  # staged run: next stage, grid at each stage end
            metrics = self._next_stage(done, stopping, metrics)
        if done % self.config.log.every_steps == 0 or last:
            self._log(done, metrics, images_per_step)
        # The checkpoint comes before grids and evaluations, which a stop signal skips.
        stopping = stopping or self.sigterm.stop(done)
        if done % self.config.checkpoint.every_steps == 0 or last or stopping:
            self._save(done)
        if stopping:
            log.warning("%s: saved a checkpoint at step %d; exiting", self.sigterm.name, done)
            return True
        self._periodic(done, last)
        return False

    def _next_stage(self, done: int, stopping: bool, metrics: dict) -> dict:
        """A staged run after step `done`: the stage of the next step (a grid of the ended one,
        the recipe's stage_start on the state, batches reopened for a new batch size)."""
        stage, new = self.stage, stage_of(self.recipe, self.config, done)  # host math: no wait
        if new.name != stage.name:
            if not stopping:  # a stopping run saves first and renders nothing
                # The next stage's G (ProGAN: at α = 0, the ended stage's output upsampled)
                # when it runs on this state; else the ending stage's.
                same = _same_shapes(self.layouts(stage), self.layouts(new))
                end_grid = self._compiled_for(new if same else stage)[1]
                _write_grid(self.writer, self.workdir, done, end_grid(self.state), self.is_main,
                            f"_end_{stage.name}")
            if self.recipe.stage_start is not None:
                self.state = jax.device_put(self.recipe.stage_start(self.state, new),
                                            self.layouts(new).shardings)
                if new.key != stage.key:
                    self.sv_paths = self._sv_paths()
        if new.batch_size != stage.batch_size:
            self.batches.close()
            self.batches = None  # reopened with the new layout by the next step
        self.stage = new
        return dict(metrics, **_stage_scalars(new, self.state))

    def _log(self, done: int, metrics: dict, images_per_step: int) -> None:
        """The log step: finiteness check, scalars, history and the console progress line."""
        _check_finite(self.finite, self.checked, done, self.ckpt)
        self.checked = done
        ips = images_per_step * (done - self.t0_step) / max(time.time() - self.t0, 1e-9)
        eta = (self.num_steps - done) * images_per_step / max(ips, 1e-9)
        _write_scalars(self.writer, done, metrics, ips, eta)
        self.history.append((done, _host_metrics(metrics)))
        self.t0, self.t0_step = time.time(), done
        if self.is_main:
            log.info("%s", progress.progress_line(done, self.num_steps, ips, eta,
                                                  self.history[-1][1], self.stage.name, self.bar))

    def _periodic(self, done: int, last: bool) -> None:
        """After step `done`'s checkpoint: singular values, the sample grid, config.eval."""
        lg = self.config.log
        if lg.sv_every_steps and done % lg.sv_every_steps == 0:
            for g, paths in self.sv_paths.items():
                sv = writers.top_singular_values_jit(self.state.params[g], tuple(paths), 3)
                self.writer.write_scalars(done, {f"{g}/{k}": float(v) for k, v in sv.items()})
        if lg.image_every_steps and (done % lg.image_every_steps == 0 or last):
            _write_grid(self.writer, self.workdir, done,
                        self._compiled_for(self.stage)[1](self.state), self.is_main)
        if self.eval_every and done % self.eval_every == 0:
            values = evaluation.evaluate_state(recipe_of(self.recipe, self.stage), self.state,
                                               self.config, self.workdir, self.mesh, self.writer)
            if self.best is not None:  # config.checkpoint.best_metric: keep the best beside
                self.best.update(done, self.state, self.cfg_dict, values)


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

