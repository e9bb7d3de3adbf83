"""The generic trainer: the GANState pytree, the sharded step builder, the loop, checkpoints.

`run(config, workdir)` trains any recipe (config.recipe); nothing here branches on family names.
TensorFlow, TFDS and clu writers are imported only inside the functions that use them.
"""

from gan_zoo.recipes.base import GANState, Phase, Recipe
from gan_zoo.train.loop import build_state, run
from gan_zoo.train.step import ema_update, make_train_step, train_step

__all__ = ["GANState", "Phase", "Recipe", "build_state", "ema_update", "make_train_step", "run",
           "train_step"]
