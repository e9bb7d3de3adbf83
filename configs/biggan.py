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
    # 2-core CPU, 32x32, 10 classes (not from the paper). G LR 1e-3, z 32 (4 chunks of 8) so the
    # class embedding carries more of each CBN input. D: the paper's 2 D steps at LR 1e-3 (= G's):
    # with 1 D step at 4e-4 D sat at chance (hinge loss ~2) and G kept a few styles per class
    # (issue #16). benchmarks/digits_quality.py at 2,000 steps (1,000 EMA samples; real held-out
    # digits in brackets): agreement 93.7% (97.8%), recall 0.18 (0.89), FD 2.22 (0.42); the old
    # 1 D step at 4e-4: 77.9%, 0.09, 4.24 (benchmarks/RESULTS.md, session 3). CPU: 579 s
    # user + sys incl. compile on a shared box at load ~18 (the old preset: 407 s at load 10-22,
    # 332 s uncontended), i.e. ~4 min uncontended on 2 cores.
    "digits": dict(resolution=32, n_classes=10, dim_z=32, shared_dim=32, ch=4, depth=1,
                   attn="0", data="digits", batch=32, steps=2000, lr_g=1e-3, lr_d=1e-3,
                   d_steps=2, ema_start=500, ema_decay=0.999, standing_batches=8,
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
    # off, the paper presets); cutout square side as a fraction of the image (their code: 0.5);
    # the value of the shifts' padding and the cutout square (their code: 0; -1 = black)
    c.train.diffaug = p.get("diffaug", "")
    c.train.diffaug_cutout = p.get("diffaug_cutout", 0.5)
    c.train.diffaug_fill = p.get("diffaug_fill", 0.0)
    # D's minibatch-stddev group (StyleGAN's remedy for dropped modes; 0 = off = the paper's D)
    c.model.d_mbstd_group = p.get("d_mbstd_group", 0)
    c.preset = a.preset
    return c
