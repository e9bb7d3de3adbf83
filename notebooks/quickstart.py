# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ORG/gan_zoo/blob/main/notebooks/quickstart.ipynb)
#
# # gan_zoo quick start: BigGAN-deep on digits
#
# Train the BigGAN-deep `digits` preset (scikit-learn's handwritten digits at 32×32, 10 classes)
# on whatever devices this runtime has (TPU, GPU or CPU), watch the losses, then sample the EMA
# generator: a grid, one class at a time, and a truncation sweep. On a 2-core CPU the full preset
# (3,000 steps) takes about 8 minutes; `STEPS` below sets the length.

# %% cellView="form" jupyter={"source_hidden": true}
# @title Setup: gan_zoo from this checkout, or cloned and installed (Colab)
import os
import pathlib
import subprocess
import sys

# The checkout holding this notebook (or the cwd), else a clone with its dependencies
# installed (Colab; TensorFlow is not preinstalled on TPU VMs, which need no TPU set-up call).
cwd = pathlib.Path.cwd()
REPO = next((d for d in (cwd, *cwd.parents, cwd / "gan_zoo") if (d / "gan_zoo").is_dir()
             and (d / "configs").is_dir()), None)
if REPO is None:
    url = os.environ.get("GAN_ZOO_REPO", "https://github.com/ORG/gan_zoo")  # ORG: see README
    subprocess.run(["git", "clone", "-q", "--depth=1", url, "gan_zoo"], check=True)
    REPO = cwd / "gan_zoo"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", str(REPO)], check=True)
sys.path.insert(0, str(REPO))
from gan_zoo.tools import notebook  # noqa: E402

# Test mode (GAN_ZOO_NOTEBOOK_TEST=1, tests/notebooks_test.py): tiny sizes and steps, XLA's
# cheapest CPU compile; the cwd becomes the checkout (for the configs/ package).
TEST = notebook.setup(REPO)

# %%
import tempfile

import jax
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display
from PIL import Image

from gan_zoo import train
from gan_zoo.config_file import load_config_file
from gan_zoo.train import inference, sharding, writers

print("devices:", jax.devices())

# %% [markdown]
# ## Config
# The same preset as `python experiments/main.py --config=configs/biggan_deep.py:digits`; any
# field can be changed here as with `--config.key=value`.

# %%
STEPS = 2 if TEST else 3000
config = load_config_file("configs/biggan_deep.py:digits" + (",smoke" if TEST else ""))
config.train.num_steps = STEPS
if TEST:  # one block per resolution and one D step per G step: a third of the compile time
    config.model.update(G_depth=1, D_depth=1)
    config.train.d_steps = 1
    config.log.image_every_steps = STEPS
config.log.every_steps = 1 if TEST else 50
config.checkpoint.every_steps = STEPS if TEST else 500
config.checkpoint.use_async = False
# Rerunning the training cell resumes from the workdir's latest checkpoint.
WORKDIR = tempfile.mkdtemp(prefix="quickstart_") if TEST else "/tmp/gan_zoo_quickstart"
mesh = sharding.make_mesh(config.mesh)
print("mesh:", dict(mesh.shape), "batch", config.train.batch_size, "steps", STEPS)

# %% [markdown]
# ## Train
# One jitted, sharded step over the mesh; checkpoints, TensorBoard logs and sample grids go to
# `WORKDIR`. `history` holds the metrics of every log step.

# %%
state, history = train.run(config, WORKDIR)
steps = [s for s, _ in history]
for key in ("d0/loss", "g/loss"):
    plt.plot(steps, [m[key] for _, m in history], label=key)
plt.xlabel("step")
plt.legend()
plt.show()

# %% [markdown]
# ## Samples of the EMA generator, one class per row

# %%
per_class = 2 if TEST else 10
labels = np.repeat(np.arange(10), per_class)
images, _ = inference.sample(config, WORKDIR, num=len(labels), labels=labels)
grid = writers.image_grid(images / 127.5 - 1.0, cols=per_class)
display(Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST))

# %% [markdown]
# ## One class

# %%
digit = 7
display(Image.fromarray(np.concatenate(list(images[labels == digit]), axis=1)))

# %% [markdown]
# ## Truncation sweep
# BigGAN's truncation trick (§3.1): z drawn from N(0, I) truncated to |z_i| ≤ τ; smaller τ trades
# variety for fidelity. One row per τ (the first, τ = 0, is untruncated: the grid above), the
# same class in each.

# %%
taus = (0.5,) if TEST else (1.0, 0.5, 0.25)
rows = [images[labels == digit]]
rows += [inference.sample(config, WORKDIR, num=per_class, labels=np.full(per_class, digit),
                          truncation=t)[0] for t in taus]
print("rows: τ =", (0.0, *taus))
display(Image.fromarray(np.concatenate([np.concatenate(list(r), axis=1) for r in rows])))
