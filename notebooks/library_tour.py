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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ORG/gan_zoo/blob/main/notebooks/library_tour.ipynb)
#
# # gan_zoo from your own JAX code
#
# gan_zoo is a library of plain Flax modules and pure functions, with no global state: build a
# generator from a config, call the modules and the losses yourself, jit and shard your own
# training step over a device mesh, and compute FID from arrays.

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
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from IPython.display import display
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from PIL import Image

from gan_zoo import losses
from gan_zoo.config_file import load_config_file
from gan_zoo.data import builtin
from gan_zoo.metrics import fid_from_features
from gan_zoo.models import biggan
from gan_zoo.train import sharding, writers

print("devices:", jax.devices())

# %% [markdown]
# ## A generator and a discriminator from a config
# A config holds numbers and names only; `biggan.make_generator` turns its `model` block into a
# Flax module (any other dict with the same keys works too).

# %%
config = load_config_file("configs/biggan_deep.py:digits" + (",smoke" if TEST else ""))
G = biggan.make_generator(config.model, data_devices=1)
D = biggan.make_discriminator(config.model)
N, R = 8, config.model.resolution
kg, kd, kz = jax.random.split(jax.random.PRNGKey(0), 3)
z = jax.random.normal(kz, (N, G.dim_z))
y = jnp.arange(N) % config.model.n_classes
g_vars = G.init({"params": kg}, z, y, train=False)
d_vars = D.init({"params": kd}, jnp.zeros((N, R, R, 3)), y, train=False)
print("G collections:", list(g_vars), " D collections:", list(d_vars))

# %% [markdown]
# ## Call the modules and the pure losses
# Every model returns `(output, aux)`; the losses are pure functions of arrays.

# %%
fake, aux = G.apply(g_vars, z, y, train=False)  # [N, R, R, 3] in [-1, 1]
real_u8, real_y = builtin.load_digits(R)
real = jnp.asarray(real_u8[:N] / 127.5 - 1.0, jnp.float32)
logits_real, _ = D.apply(d_vars, real, jnp.asarray(real_y[:N]), train=False)
logits_fake, _ = D.apply(d_vars, fake, y, train=False)
d_loss, (d_real, d_fake) = losses.hinge_d(logits_real, logits_fake)
print(f"hinge D loss {float(d_loss):.3f} (real {float(d_real):.3f}, fake {float(d_fake):.3f}), "
      f"G loss {float(losses.hinge_g(logits_fake)):.3f}")
display(Image.fromarray(writers.image_grid(fake, cols=N)).resize((N * 64, 64)))

# %% [markdown]
# ## Your own step, jitted and sharded over a mesh
# One mesh axis `data` over every device (`-1`: all of them); the batch is split along it, the
# parameters are replicated. The D update below is a custom step (hinge loss, Adam as in BigGAN
# §3); XLA inserts the gradient all-reduce.

# %%
mesh = sharding.make_mesh({"data": -1})  # axes are Auto: XLA places the collectives
print("mesh:", dict(mesh.shape))
batch_sharding, replicated = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
optimizer = optax.adam(config.train.lr_d, b1=0.0, b2=0.999)
d_params, d_rest = d_vars["params"], {k: v for k, v in d_vars.items() if k != "params"}


@functools.partial(jax.jit, donate_argnums=(0, 1),
                   out_shardings=(replicated, replicated, replicated))
def d_step(params, opt_state, real, y_real, fake, y_fake):
    def loss_fn(p):
        lr, _ = D.apply({"params": p, **d_rest}, real, y_real, train=False)
        lf, _ = D.apply({"params": p, **d_rest}, fake, y_fake, train=False)
        return losses.hinge_d(lr, lf)[0]

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


n = N * jax.device_count()  # a batch every device gets a slice of
put = lambda x: jax.device_put(x, batch_sharding)
d_params, opt_state = jax.device_put((d_params, optimizer.init(d_params)), replicated)
for step in range(3):
    zs = jax.random.normal(jax.random.fold_in(kz, step), (n, G.dim_z))
    ys = jnp.arange(n) % config.model.n_classes
    fakes, _ = G.apply(g_vars, zs, ys, train=False)
    idx = np.random.RandomState(step).choice(len(real_u8), n)
    d_params, opt_state, loss = d_step(d_params, opt_state, put(real_u8[idx] / 127.5 - 1.0),
                                       put(real_y[idx]), put(fakes), put(ys))
    print(f"step {step}: D loss {float(loss):.4f}")

# %% [markdown]
# ## FID from arrays
# `fid_from_features` takes two feature arrays [N, D]. FID proper uses the pool3 features of the
# FID Inception-v3 (`INCEPTION`: pytorch-fid / torch-fidelity's `pt_inception-2015-12-05` weights,
# saved as `.npz`); without that file this cell compares 8×8-pooled pixels instead, which shows
# the call but is not FID.

# %%
INCEPTION = ""  # e.g. "/content/drive/MyDrive/pt_inception-2015-12-05.npz"
fakes_u8 = writers.to_uint8(G.apply(g_vars, jax.random.normal(kz, (64, G.dim_z)),
                                    jnp.arange(64) % config.model.n_classes, train=False)[0])
reals_u8 = real_u8[:64 if TEST else 1000]
if INCEPTION:
    from gan_zoo.convert import inception
    from gan_zoo.metrics.features import InceptionFeatures

    extract = InceptionFeatures(inception.load_inception(INCEPTION), ("pool3",))
    features = lambda x: extract(x)["pool3"]
else:
    features = lambda x: x.reshape(len(x), R // 8, 8, R // 8, 8, 3).mean((2, 4)).reshape(len(x), -1)
print("FID" if INCEPTION else "Fréchet distance of pooled pixels",
      fid_from_features(features(reals_u8), features(fakes_u8)))
