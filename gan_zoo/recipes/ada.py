"""ADA in a training recipe (Karras et al., NeurIPS 2020, "Training Generative Adversarial
Networks with Limited Data" §3; official NVlabs/stylegan3 train.py --aug and training_loop.py).

config.augment selects the mode: "none"; "fixed" (strength train.augment_p, constant); "ada" (p in
the train state, `state.scalars["ada_p"]`, from 0, moved every train.ada_interval steps by
gan_zoo.augment.ada_adjust towards train.ada_target at the speed of train.ada_kimg). The signs of
D's real logits accumulate in `ada_signs` / `ada_count` between moves, so resume is exact.
"""

import jax.numpy as jnp

from gan_zoo import augment

AUGMENT_MODES = ("none", "fixed", "ada")  # config.augment (official train.py --aug)
AUG_TAG = 0x41444100  # fold_in purpose tag of the augmentation keys (+ 0..3 per D input)


def augment_setting(config) -> tuple:
    """(mode, fixed p) from config.augment and train.augment_p; a config without the keys (built
    by hand) has no augmentation."""
    mode, t = config.get("augment", "none"), config.train
    if mode not in AUGMENT_MODES:
        raise ValueError(f"config.augment: expected one of {AUGMENT_MODES}, got {mode!r}")
    p = float(t.get("augment_p", 0.0))
    if mode == "fixed" and p < 0:
        raise ValueError(f"config.train.augment_p: expected >= 0 with augment='fixed', got {p}")
    if mode == "ada" and (t.get("ada_interval", 4) < 1 or t.get("ada_kimg", 500) <= 0):
        raise ValueError(f"config.train.ada_interval (>= 1) / ada_kimg (> 0): got "
                         f"{t.get('ada_interval')} / {t.get('ada_kimg')}")
    return mode, p


def ada_scalars() -> dict:
    """The ADA scalars of a fresh run: p = 0 (official augment_p default with --aug=ada), no
    signs accumulated."""
    return {k: jnp.zeros((), jnp.float32) for k in ("ada_p", "ada_signs", "ada_count")}


def count_signs(scalars: dict, logits) -> dict:
    """ada_signs += sum(sign(D(x_real))), ada_count += N (official Loss/signs/real)."""
    return {**scalars, "ada_signs": scalars["ada_signs"] + jnp.sum(jnp.sign(logits)),
            "ada_count": scalars["ada_count"] + logits.shape[0]}


def ada_post_step(state, batch: int, interval: int, target: float, ada_kimg: float):
    """After steps with (step + 1) % interval == 0 (official batch_idx % ada_interval): p from
    augment.ada_adjust, accumulators reset."""
    s = state.scalars
    due = (state.step + 1) % interval == 0
    p, _ = augment.ada_adjust(s["ada_p"], s["ada_signs"], s["ada_count"], target, batch,
                              interval, ada_kimg)
    keep = lambda new, old: jnp.where(due, new, old)  # noqa: E731
    return state.replace(scalars={**s, "ada_p": keep(p, s["ada_p"]),
                                  "ada_signs": keep(0.0, s["ada_signs"]),
                                  "ada_count": keep(0.0, s["ada_count"])})
