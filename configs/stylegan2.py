"""StyleGAN2 (Karras et al., CVPR 2020), spec stylegan2_and_progan.md A6, A8.

    python experiments/main.py --config=configs/stylegan2.py:photos --workdir=/tmp/sg2

Args (after the colon, comma separated): a preset name, then overrides such as `steps=2000`,
`batch=16`, `res=256`, `gamma=10`, `smoke`.
"""

import ml_collections

from configs import common

_FFHQ = dict(resolution=1024, data="ffhq", flip=True, batch=32, steps=781_250,  # 25M images
             lr_g=0.002, lr_d=0.002, ema_kimg=10.0, mixing=0.9)
# Table 1 configurations on FFHQ 1024 (spec A6; model switches in stylegan2.VARIANTS). A-D train
# without progressive growing here (not implemented), at the fixed lr of E-F; A-B regularise R1
# every step (d_reg=0), A-C have no path length (pl_weight=0). γ = 100 for E, 10 otherwise.
PRESETS = {
    "ffhq1024": dict(_FFHQ, variant="config-f"),  # config F = StyleGAN2
    "ffhq1024_a": dict(_FFHQ, variant="config-a", d_reg=0, pl_weight=0.0),
    "ffhq1024_b": dict(_FFHQ, variant="config-b", d_reg=0, pl_weight=0.0),
    "ffhq1024_c": dict(_FFHQ, variant="config-c", pl_weight=0.0),
    "ffhq1024_d": dict(_FFHQ, variant="config-d"),
    "ffhq1024_e": dict(_FFHQ, variant="config-e", gamma=100.0),
    # LSUN Church 256 (Table 3): config F, γ = 100, 48M images, no flips.
    "lsun256": dict(_FFHQ, variant="config-f", resolution=256, data="lsun/church_outdoor",
                    flip=False, gamma=100.0, steps=1_500_000),
    # 2-core CPU, 32x32 crops of the built-in photos, tiny G/D (about 55k + 45k parameters).
    "photos": dict(_FFHQ, variant="config-f", resolution=32, data="photos", batch=8,
                   steps=300, z_dim=32, w_dim=32, mapping_layers=2, channel_base=512,
                   channel_max=32, ema_kimg=1.0, ckpt_every=100, log_every=20,
                   image_every=100, grid=16),
}


def base(p: dict, family: str) -> ml_collections.ConfigDict:
    """The full StyleGAN2/3 config for a preset dict `p` (keys as in the PRESETS tables)."""
    c = common.run_base(family)
    c.model = ml_collections.ConfigDict(dict(
        variant=p["variant"], resolution=p["resolution"], n_classes=p.get("n_classes", 0),
        # 0 = the VARIANTS row's value.
        z_dim=p.get("z_dim", 0), w_dim=p.get("w_dim", 0), mapping_layers=p.get("mapping_layers", 0),
        channel_base=p.get("channel_base", 0), channel_max=p.get("channel_max", 0),
        d_channel_base=p.get("d_channel_base", 0), d_channel_max=p.get("d_channel_max", 0),
        num_layers=p.get("num_layers", 0),  # StyleGAN3 only: synthesis layers N (14)
        mbstd_group_size=4))
    c.data = ml_collections.ConfigDict(dict(
        name=p["data"], data_dir="", split="train", flip=p["flip"], shuffle_buffer=10_000,
        prefetch=2))
    c.train = ml_collections.ConfigDict(dict(
        num_steps=p["steps"], batch_size=p["batch"], grad_accum=1,
        lr_g=p["lr_g"], lr_d=p["lr_d"], b1=0.0, b2=0.99, adam_eps=1e-8,  # A8.8
        r1_gamma=p.get("gamma", 10.0), d_reg_interval=p.get("d_reg", 16),  # A8.2-3; 0 = not lazy
        pl_weight=p.get("pl_weight", 2.0), g_reg_interval=p.get("g_reg", 4),  # A8.4, A12.1: code 4
        pl_decay=0.01, pl_batch_shrink=2,
        style_mixing_prob=p["mixing"],  # A8.5 (0 for StyleGAN3)
        ema_kimg=p["ema_kimg"], ema_rampup=p.get("ema_rampup", 0.0),  # A8.7; 0 = no ramp-up
        blur_sigma=p.get("blur_sigma", 0.0), blur_fade_kimg=p.get("blur_fade_kimg", 0.0),
        magnitude_ema_kimg=20.0))  # StyleGAN3 only: β = 0.5 ** (batch / 20k)
    c.sample = ml_collections.ConfigDict(dict(
        truncation=p.get("truncation", 1.0),  # ψ; 1 (or <= 0) = none; Fig. 12 uses 0.5
        standing_stats_batch_size=min(p["batch"], 32)))  # sample batch (no standing stats)
    c.checkpoint = ml_collections.ConfigDict(dict(
        every_steps=p.get("ckpt_every", 5000), keep=3, use_async=True))
    c.log = ml_collections.ConfigDict(dict(
        every_steps=p.get("log_every", 100), image_every_steps=p.get("image_every", 5000),
        sv_every_steps=0, sv_layers=".", grid_size=p.get("grid", 64)))
    if hasattr(common, "eval_config"):
        c.eval = common.eval_config(p)
    c.mesh = ml_collections.ConfigDict({"data": -1})
    c.param_rules = ()  # ((regex, (axis or None, ...)), ...); default: all replicated
    return c


def get_config(arg=None):
    a = common.parse_arg(arg, preset="ffhq1024", steps=0, batch=0, res=0, gamma=-1.0,
                         smoke=False)
    p = dict(common.check_preset(a.preset, PRESETS))
    return finish(p, a, "stylegan2")


def finish(p: dict, a, family: str):
    """Applies the arg overrides and the `smoke` block to preset `p`; builds the config."""
    for key, field in (("steps", "steps"), ("batch", "batch"), ("res", "resolution")):
        if a[key]:
            p[field] = a[key]
    if a.gamma >= 0:
        p["gamma"] = a.gamma
    if a.smoke:  # CPU smoke run: tiny everything
        p.update(resolution=32, batch=8, steps=10, z_dim=32, w_dim=32, mapping_layers=2,
                 channel_base=256, channel_max=16, ckpt_every=5, log_every=5, image_every=10,
                 grid=16, data="photos", flip=False, ema_kimg=0.1)
    c = base(p, family)
    c.preset = a.preset
    return c
