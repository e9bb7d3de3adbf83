"""Progressive-growing schedule shared by the ProGAN recipe and StyleGAN2 configs A-D.

ProGAN §2 / App. A.1 (spec B2): training starts at a low resolution and alternates a fade-in of
the next resolution (α rising linearly 0 -> 1 with images shown) and a stabilisation (α = 1), each
`phase_images` long; the last resolution stabilises forever. StyleGAN (config A-D of StyleGAN2
Table 1, spec A6 [code]) uses the same phases, starting from 8^2 with 600k images each and
per-resolution minibatch and learning-rate tables (official `training_schedule`, lod semantics:
the fade-in into r trains at r).

Host-side functions take Python ints; `alpha_at` is jnp-traceable (used inside a train step).
A growing recipe keeps α and the image counter in `state.scalars` ("alpha", "images_seen":
`initial_scalars`, advanced by `count_images` as its post_step), so the schedule resumes from a
checkpoint; `staged` turns one recipe per resolution into the trainer's staged recipe. The host
finds the stage of a step from the step number alone (`images_at_step`, the same count the
device keeps), so the trainer never waits for the device to pick the next stage.
"""

import dataclasses
import math
from typing import Mapping

import jax.numpy as jnp

from gan_zoo.models import progan as progan_models
from gan_zoo.recipes.base import Recipe, Stage


def by_resolution(table: Mapping, res: int, base):
    """table[res] if present, else `base` (official `dict.get(resolution, base)` tables)."""
    return table.get(res, base)


@dataclasses.dataclass(frozen=True)
class Growth:
    """The growing schedule: stabilise at `start_resolution` for `phase_images`, then per
    resolution a fade-in and a stabilisation of `phase_images` each, then stay at the final one.

    Minibatch per resolution: batch_sizes[res], else `default_batch` (0: every resolution must be
    in the table)."""

    final_resolution: int  # last resolution (a power of two >= start_resolution)
    phase_images: int  # images per fade-in and per stabilisation phase
    batch_sizes: Mapping = dataclasses.field(default_factory=dict)  # {res: minibatch}
    start_resolution: int = 4  # first resolution (ProGAN 4, StyleGAN 8)
    default_batch: int = 0  # minibatch of resolutions missing from batch_sizes; 0 = none

    def __post_init__(self):
        for name in ("start_resolution", "final_resolution"):
            r = getattr(self, name)
            if r < 4 or r & (r - 1):
                raise ValueError(f"Growth.{name} must be a power of two >= 4, got {r}")
        if self.start_resolution > self.final_resolution:
            raise ValueError(f"Growth.start_resolution={self.start_resolution} must be <= "
                             f"final_resolution={self.final_resolution}")
        if self.phase_images <= 0:
            raise ValueError(f"Growth.phase_images must be > 0, got {self.phase_images}")
        missing = [r for r in self.resolutions if r not in self.batch_sizes]
        if missing and self.default_batch <= 0:
            raise ValueError(f"Growth.batch_sizes: no minibatch size for resolutions {missing}")

    @property
    def resolutions(self) -> tuple:
        lo, hi = int(math.log2(self.start_resolution)), int(math.log2(self.final_resolution))
        return tuple(2 ** k for k in range(lo, hi + 1))

    @property
    def growth_images(self) -> int:
        """Images until the final resolution completes one stabilisation phase, (2·levels − 1)
        phases (spec B2: 0.8M + 8 × 1.6M = 13.6M at 1024^2); training may continue after."""
        return (2 * len(self.resolutions) - 1) * self.phase_images

    def batch_size(self, res: int) -> int:
        return int(by_resolution(self.batch_sizes, res, self.default_batch))


def phase_index(images_seen: int, growth: Growth) -> int:
    """0: stabilise the start resolution s; 2k - 1: fade in s·2^k; 2k: stabilise s·2^k (capped at
    the last phase)."""
    return min(int(images_seen) // growth.phase_images, 2 * len(growth.resolutions) - 2)


def alpha_at(images_seen, growth: Growth):
    """Fade-in weight α for `images_seen` (jnp-traceable; PG §2: linear 0 -> 1 over a fade-in).

    α = fraction of the current fade-in phase done; 1 in every stabilisation phase and after growth.
    """
    seen = jnp.asarray(images_seen, jnp.float32)
    p = jnp.floor(seen / growth.phase_images)
    frac = seen / growth.phase_images - p
    fading = (p % 2 == 1) & (seen < growth.growth_images)
    return jnp.where(fading, frac, 1.0).astype(jnp.float32)


def schedule(images_seen: int, growth: Growth) -> tuple:
    """(resolution, alpha, batch_size) after `images_seen` real images (host-side, Python ints).

    Phases of `phase_images` each: [stab s] [fade 2s] [stab 2s] ... [stab final] (forever).
    """
    p = phase_index(images_seen, growth)
    res = growth.resolutions[(p + 1) // 2]
    return res, float(alpha_at(images_seen, growth)), growth.batch_size(res)


def stage_name(images_seen: int, growth: Growth) -> str:
    """"stab8", "fade16", "stab16", ...: the growing phase after `images_seen` images."""
    p = phase_index(images_seen, growth)
    return f"{'fade' if p % 2 else 'stab'}{growth.resolutions[(p + 1) // 2]}"


def steps_for_images(total_images: int, growth: Growth) -> int:
    """Train steps until `total_images` real images are seen (the batch changes per phase; a
    step that crosses a phase end runs at the batch of the phase it starts in)."""
    seen, steps = 0, 0
    while seen < total_images:
        p = phase_index(seen, growth)
        last = p == 2 * len(growth.resolutions) - 2
        end = total_images if last else min((p + 1) * growth.phase_images, total_images)
        batch = schedule(seen, growth)[2]
        n = -(-(end - seen) // batch)  # ceil
        seen, steps = seen + n * batch, steps + n
    return steps


def images_at_step(step: int, growth: Growth) -> int:
    """Real images seen after `step` train steps (host-side): each step adds the batch of the
    phase it starts in (as `count_images` does on the device and `steps_for_images` assumes)."""
    seen, done = 0, 0
    while True:
        p = phase_index(seen, growth)
        batch = growth.batch_size(growth.resolutions[(p + 1) // 2])
        if p == 2 * len(growth.resolutions) - 2:  # the last phase lasts forever
            return seen + (step - done) * batch
        n = -(-((p + 1) * growth.phase_images - seen) // batch)  # steps left in this phase
        if done + n >= step:
            return seen + (step - done) * batch
        seen, done = seen + n * batch, done + n


def stage_at(images_seen: int, growth: Growth) -> Stage:
    """The trainer stage after `images_seen` images: key = resolution = the stage side."""
    res, _, batch = schedule(images_seen, growth)
    return Stage(stage_name(images_seen, growth), res, batch, res)


def prepare_reals(x, res: int, alpha):
    """Reals at the current resolution, blended during fade-in (PG Fig. 2, spec B2; StyleGAN's
    `process_reals` FadeLOD): x_res = (1 − α)·up_nn(avgpool2(x)) + α·x, after average-pooling
    x [N, R, R, C] to res (on the device: the trainer feeds the data at its full resolution)."""
    if x.shape[1] != x.shape[2] or x.shape[1] < res or x.shape[1] % res:
        raise ValueError(f"ProGAN reals: expected [N, R, R, C] with R a multiple of res={res}, "
                         f"got {x.shape}")
    x = progan_models.downscale_to(x.astype(jnp.float32), res)
    if res == 4:
        return x
    blurred = progan_models.upsample_nn(progan_models.avgpool2(x))
    return progan_models.lerp(blurred, x, alpha)


def reset_optimizers(state, optimizers: Mapping):
    """Fresh Adam moments for every group. The official ProGAN and StyleGAN loops do this at the
    start of every fade-in and stabilisation phase (`reset_opt_for_new_lod`, spec A6/B2 [code]);
    the papers do not say."""
    return state.replace(opt_state={k: optimizers[k].init(state.params[k]) for k in state.params})


def initial_scalars() -> dict:
    """The growing scalars of a fresh run: α = 1 (the start resolution stabilises first), no
    images seen."""
    return {"alpha": jnp.ones((), jnp.float32), "images_seen": jnp.zeros((), jnp.int32)}


def count_images(state, batch: int, growth: Growth):
    """post_step of a growing recipe: images_seen += batch, then α for the next step (PG §2)."""
    seen = state.scalars["images_seen"] + jnp.int32(batch)
    return state.replace(scalars={**state.scalars, "images_seen": seen,
                                  "alpha": alpha_at(seen, growth)})


def staged(recipes: Mapping, growth: Growth, total_images: int, reset_opt: bool) -> Recipe:
    """The staged recipe the generic trainer runs: one Stage per fade-in / stabilisation phase
    (Stage.key = resolution; one compiled step per resolution), `recipes[res]` run in it, fresh
    Adam moments at every phase start when `reset_opt`, and `total_images` real images long.

    recipes: {resolution: Recipe} for every resolution of `growth`, each with a post_step that
    counts images (`count_images`); the final resolution's recipe is the run's base recipe."""
    base = recipes[growth.final_resolution]

    return dataclasses.replace(
        base, stage_fn=lambda step: stage_at(images_at_step(step, growth), growth),
        stage_recipe=recipes.__getitem__,
        stage_start=(lambda state, _: reset_optimizers(state, base.optimizers)) if reset_opt
        else None,
        num_steps=steps_for_images(total_images, growth))
