"""BigGAN (Brock, Donahue, Simonyan, ICLR 2019), spec biggan.md §2 and §7.

    python experiments/main.py --config=configs/biggan.py:digits --workdir=/tmp/biggan_digits

Args (after the colon, comma separated): a preset name, then overrides such as `steps=2000`,
`batch=32`, `ch=16`, `res=64`, `smoke`.
"""

from configs import common

# Paper settings: ch = 96, batch 2048, Adam(0, 0.999), LR G 5e-5 / D 2e-4 (BigGAN Tab.1 row 8,
# App. C); z 120 / 140 / 160 hierarchical (Tab.4-6); attention at 64 (128, 512) or 128 (256).
PRESETS = {
    "imagenet128": dict(resolution=128, n_classes=1000, dim_z=120, shared_dim=128, ch=96,
                        depth=1, attn="64", data="imagenet2012", batch=2048, steps=500_000,
                        lr_g=5e-5, lr_d=2e-4),
    "imagenet256": dict(resolution=256, n_classes=1000, dim_z=140, shared_dim=128, ch=96,
                        depth=1, attn="128", data="imagenet2012", batch=2048, steps=500_000,
                        lr_g=5e-5, lr_d=2e-4),
    "imagenet512": dict(resolution=512, n_classes=1000, dim_z=160, shared_dim=128, ch=96,
                        depth=1, attn="64", data="imagenet2012", batch=2048, steps=500_000,
                        lr_g=5e-5, lr_d=2e-4),
    # 2-core CPU, 32x32, 10 classes (not from the paper). G is the weak side at this size (the
    # paper LRs at 2 D steps learn strokes but no class: 1,500 steps, classifier accuracy 12%),
    # so: 1 D step, G LR 1e-3 above D's 4e-4, and z 32 (4 chunks of 8) so the class embedding
    # carries more of each CBN input. Measured (2,000 steps, incl. compile): 287 s user + 44 s
    # sys = 332 CPU-s, i.e. ~2.8 min uncontended on 2 cores (22 min wall on a loaded machine);
    # an 8x8 LogisticRegression on 4x4-pooled EMA samples (1,000, labels spread evenly) predicts
    # the conditioning label 78% of the time (0, 1, 3, 4, 7 ~90%+; 2 and 9 weakest, 36-43%).
    "digits": dict(resolution=32, n_classes=10, dim_z=32, shared_dim=32, ch=4, depth=1,
                   attn="0", data="digits", batch=32, steps=2000, lr_g=1e-3, lr_d=4e-4,
                   d_steps=1, ema_start=500, ema_decay=0.999, standing_batches=8,
                   ckpt_every=500, log_every=50, image_every=250, sv_every=250, grid=100),
}


def get_config(arg=None):
    a = common.parse_arg(arg, preset="imagenet128", steps=0, batch=0, ch=0, res=0, smoke=False)
    p = dict(common.check_preset(a.preset, PRESETS))
    return finish(p, a, "biggan")


def finish(p: dict, a, family: str):
    """Applies the arg overrides and the `smoke` block to preset `p`; builds the config."""
    for key, field in (("steps", "steps"), ("batch", "batch"), ("ch", "ch"), ("res", "resolution")):
        if a[key]:
            p[field] = a[key]
    if a.smoke:  # CPU smoke run: tiny everything
        p.update(resolution=32, ch=4, batch=8, steps=10, n_classes=min(p["n_classes"], 10),
                 standing_batches=2, ckpt_every=5, log_every=5, image_every=10, sv_every=10,
                 grid=16, data="digits" if p["data"] == "imagenet2012" else p["data"],
                 ema_start=0, dim_z=min(p["dim_z"], 64), attn="0")
    c = common.biggan_base(p, family)
    # Optional preset keys beyond the shared base (paper: 2 D steps, ortho beta 1e-4).
    c.train.d_steps = p.get("d_steps", c.train.d_steps)
    c.train.ortho_beta = p.get("ortho_beta", c.train.ortho_beta)
    # DiffAugment of D's inputs (Zhao et al. 2020): a policy such as "translation,cutout" ("":
    # off, the paper presets); cutout square side as a fraction of the image (their code: 0.5)
    c.train.diffaug = p.get("diffaug", "")
    c.train.diffaug_cutout = p.get("diffaug_cutout", 0.5)
    c.preset = a.preset
    return c
