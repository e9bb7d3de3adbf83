"""The recipe protocol shared by every GAN family, and the one train-state pytree.

A recipe is a frozen dataclass of pure functions that the generic trainer (`gan_zoo.train`) runs
without knowing the family: `init_state`, a tuple of `Phase`s (D steps, G steps, lazy
regularisers), optimizers per parameter group, an EMA decay schedule and `sample_fn`.
"""

import dataclasses
import math
from typing import Any, Callable, Hashable, Mapping, Optional

import jax
from flax import struct

PyTree = Any


class GANState(struct.PyTreeNode):
    """Everything needed to resume a run, as one pytree (checkpointed as is).

    `params`, `opt_state` and `collections` are dicts keyed by parameter group ("g", "d");
    `collections[group]` holds the model's mutable collections (`batch_stats`, `spectral_norm`,
    `w_avg`, ...); `scalars` holds recipe scalars (`pl_mean`, `ada_p`, `alpha`).
    """

    step: jax.Array  # int32 [], completed train steps (one step = one pass over the phases)
    rng: jax.Array  # uint32 [2], the run's base key; per-step keys are fold_in(rng, step)
    params: dict  # {"g": ..., "d": ...}, float32
    opt_state: dict  # {"g": ..., "d": ...}
    ema_params: PyTree  # EMA of params["g"] (or None when the recipe has no EMA)
    collections: dict  # {"g": {"batch_stats": ..., "spectral_norm": ...}, "d": {...}}
    scalars: dict  # recipe scalars, float32 []


@dataclasses.dataclass(frozen=True)
class Phase:
    """One optimisation phase of a train step: a D step, a G step or a lazy regulariser.

    loss_fn(params, state, batch, key) -> (loss, (collections, metrics)): `params` replaces
    `state.params[update]` and is differentiated; `collections` is the updated
    `state.collections` dict; `metrics` is a flat dict of float scalars. The aux may carry a
    third element, the updated `state.scalars` dict (e.g. the path-length mean `pl_mean`).
    """

    name: str  # metric prefix, e.g. "d0", "g", "r1"
    loss_fn: Callable  # see the class docstring
    update: str = "d"  # parameter group the gradient updates (a key of state.params)
    every: int = 1  # runs on steps with step % every == 0 (lazy regularisation intervals)
    uses_real: bool = True  # consumes the next real sub-batch of the step's input
    # Name of an earlier phase whose real sub-batch this one reuses (consumes none of its own);
    # "" = none. StyleGAN's D reg (R1) sees the D-main reals, as the official loop does.
    reals_from: str = ""


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of a staged run, e.g. a fade-in or stabilisation phase of progressive growing
    (ProGAN §2). The trainer compiles one step per `key` (several stages may share one), feeds
    `batch_size` real images per sub-batch (at the data's resolution: the recipe pools them to
    `resolution`² on the device), and writes a sample grid at the end of every stage (whenever
    `name` changes)."""

    name: str  # unique per stage, e.g. "fade16", "stab16"; logged in sample grid file names
    key: Hashable  # selects the stage's recipe: Recipe.stage_recipe(key); one compiled step each
    batch_size: int  # global real images per sub-batch (in place of config.train.batch_size)
    resolution: int  # side of the stage's images (G's output, D's input)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A family's training recipe, run by the generic trainer (which never branches on names)."""

    init_state: Callable  # (rng, config) -> GANState
    phases: tuple  # tuple[Phase, ...], run in order within one train step
    optimizers: Mapping  # {group: optax.GradientTransformation}
    sample_fn: Callable  # (state, key, labels, truncation, collections) -> images [N, H, W, 3]
    networks: Mapping  # {group: flax module}, for parameter tables
    learning_rates: Mapping = dataclasses.field(default_factory=dict)  # {group: step -> lr}, logs
    ema_decay: Optional[Callable] = None  # step -> decay in [0, 1]; None: no EMA
    sampling_collections: Optional[Callable] = None  # (state, key, truncation) -> G collections
    post_step: Optional[Callable] = None  # (state) -> state, after the EMA (e.g. alpha ramps)
    n_classes: int = 0  # classes of the conditional G (0: unconditional)
    dim_z: int = 0  # latent size
    # Staged runs (progressive growing); None: one stage with config.train.batch_size.
    # (step: int) -> Stage of train step `step` (host-side, from the step number alone: no device
    # read, so the trainer does not wait on the device every step).
    stage_fn: Optional[Callable] = None
    stage_recipe: Optional[Callable] = None  # (Stage.key) -> Recipe run in that stage
    # (state, new Stage) -> state when a new stage begins: called on the ending stage's state,
    # returns a state shaped like the new stage recipe's init_state (stages may differ in shape:
    # the trainer keeps abstract states and shardings per Stage.key).
    stage_start: Optional[Callable] = None
    num_steps: int = 0  # run length set by the recipe (e.g. from images); 0: train.num_steps
    # W-space metrics (PPL): (state, G collections, batch_size) -> train.w_space.WSpace. None:
    # found from networks["g"] when it has StyleGAN's map + synthesize, else no W space.
    w_space: Optional[Callable] = None
    # config.init_from: (fresh state, train.loop.SourceRun) -> state. None: the generic warm start
    # (the source must have this run's shapes: networks, EMA and collections copied). A recipe
    # sets it when a run starts from a run of another shape (StyleGAN-XL: the previous stage's
    # G as the frozen stem); the source is read with its own saved config.
    warm_start: Optional[Callable] = None
    # (fresh state) -> state with frozen pretrained weights read from local files, run on the host
    # after the jitted init (so large weight files never become compile-time constants).
    load_frozen: Optional[Callable] = None

    @property
    def real_batches_per_step(self) -> int:
        """Real sub-batches one train step consumes (one per phase with uses_real that does not
        reuse another phase's reals)."""
        return sum(p.uses_real and not p.reals_from for p in self.phases)


def data_devices(config) -> int:
    """Devices a batch is split over: mesh axis 'data' of config.mesh times 'fsdp' if present
    (-1: the devices left by the other axes; gan_zoo.train.sharding.BATCH_AXES). The size of a
    per-device ("device") statistics group's denominator, not jax.device_count()."""
    axes = dict(config.mesh)
    sizes = [axes[a] for a in ("data", "fsdp") if a in axes] or [1]
    if -1 in axes.values():
        left = jax.device_count() // math.prod(v for v in axes.values() if v != -1)
        sizes = [left if s == -1 else s for s in sizes]
    return int(math.prod(sizes))


def loss_weight(train_cfg, field: str) -> float:
    """config.train.<field>, a loss term's weight (0 = off), checked: a number >= 0 (NaN and
    booleans are errors naming the field)."""
    w = train_cfg.get(field, 0.0)
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not w >= 0:
        raise ValueError(f"config.train.{field} must be a number >= 0 (0 = off), got {w!r}")
    return float(w)


def mode_seeking_weight(train_cfg, batch: int = 0) -> float:
    """config.train.ms_weight (MSGAN's mode-seeking term on G; 0 = off, the papers' loss),
    checked: >= 0, and > 0 needs an even per-step G batch (batch / grad_accum) to pair; batch:
    the step's batch (a stage's, StyleGAN-XL's train.batch_sizes), 0 = train.batch_size."""
    weight = float(train_cfg.get("ms_weight", 0.0))
    batch = batch or train_cfg.batch_size
    micro = batch // train_cfg.get("grad_accum", 1)
    if weight < 0 or (weight and micro % 2):
        raise ValueError(f"config.train.ms_weight={weight}: expected >= 0, and > 0 needs an "
                         f"even per-step G batch (train.batch_size, or the stage's entry of "
                         f"train.batch_sizes, {batch} / train.grad_accum = {micro})")
    return weight
