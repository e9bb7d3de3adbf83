"""StyleGAN2 (Karras et al., CVPR 2020), spec stylegan2_and_progan.md A6, A8.

    python experiments/main.py --config=configs/stylegan2.py:photos --workdir=/tmp/sg2

Args (after the colon, comma separated): a preset name, then overrides such as `steps=2000`,
`batch=16`, `res=256`, `gamma=10`, `smoke`; for the growing presets `ffhq1024_a` ... `_d`
(configs A-D), `total_kimg=...` and `phase_kimg=...` (their length is in kimg, not steps).
"""

import ml_collections

from configs import common

_FFHQ = dict(resolution=1024, data="ffhq", flip=True, batch=32, steps=781_250,  # 25M images
             lr_g=0.002, lr_d=0.002, ema_kimg=10.0, mixing=0.9, xla_cpu_convs="eigen")
# Configs A-D grow progressively (spec A6 [code], official stylegan2 `run_training.py`): from 8^2,
# 600k images per fade-in and per stabilisation, minibatch {8: 256, 16: 128, 32: 64, 64: 32},
# else 32; lr 1e-3 up to 64^2, then {128: 1.5e-3, 256: 2e-3, 512: 3e-3, 1024: 3e-3} (the paper's
# "1e-3 rising gradually by 3x"); Adam reset at every phase start; 25M images (Table 1).
_GROW = dict(_FFHQ, steps=0, total_kimg=25_000, phase_kimg=600, start_res=8, lr_g=0.001,
             lr_d=0.001, batch_sizes={8: 256, 16: 128, 32: 64, 64: 32},
             lr_by_res={128: 0.0015, 256: 0.002, 512: 0.003, 1024: 0.003})
# No augmentation in any StyleGAN2 preset: the paper's runs had none (official README:
# `--cfg=stylegan2 ... --aug=noaug` for FFHQ 1024); --config.augment=ada turns ADA on.
# Table 1 configurations on FFHQ 1024 (spec A6; model switches in stylegan2.VARIANTS): A-B
# regularise R1 every step (d_reg=0), C-F lazily; A-C have no path length (pl_weight=0); γ = 100
# for E, 10 otherwise.
PRESETS = {
    # Config F trains the 4 highest resolutions in reduced precision (official train.py,
    # StyleGAN2-ADA: num_fp16_res 4, conv_clamp 256); A-E as the original TF code in float32.
    "ffhq1024": dict(_FFHQ, variant="config-f", num_fp16_res=4),  # config F = StyleGAN2
    "ffhq1024_a": dict(_GROW, variant="config-a", d_reg=0, pl_weight=0.0),
    "ffhq1024_b": dict(_GROW, variant="config-b", d_reg=0, pl_weight=0.0),
    "ffhq1024_c": dict(_GROW, variant="config-c", pl_weight=0.0),
    "ffhq1024_d": dict(_GROW, variant="config-d"),
    "ffhq1024_e": dict(_FFHQ, variant="config-e", gamma=100.0),
    # LSUN Church 256 (Table 3): config F, γ = 100, 48M images, no flips.
    "lsun256": dict(_FFHQ, variant="config-f", resolution=256, data="lsun_church",
                    flip=False, gamma=100.0, steps=1_500_000, num_fp16_res=4),
    # 2-core CPU, 32x32 crops of the built-in photos, tiny G/D (about 55k + 45k parameters).
    # γ = 1 (γ scales with resolution²); measured (benchmarks/RESULTS.md): SWD 128 after 2,000
    # steps (~6 min of 2-core CPU) vs 252 at init and 200 for the former 300 steps at γ = 10.
    "photos": dict(_FFHQ, variant="config-f", resolution=32, data="photos", batch=8,
                   steps=2000, gamma=1.0, z_dim=32, w_dim=32, mapping_layers=2, channel_base=512,
                   channel_max=32, ema_kimg=1.0, ckpt_every=100, log_every=20,
                   image_every=100, grid=16, xla_cpu_convs="ynnpack"),
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
        # Modulated conv execution in sampling / eval / tools: "auto" (per backend, dtype and
        # batch: use_fused of gan_zoo/ops/modulated_conv2d.py), "true" (fused, grouped conv) or
        # "false".
        # Training: "auto" = unfused (official train.py 'inference_only'); "true" only when the
        # batch is not sharded (one device on mesh axis 'data').
        fused_modconv="auto",
        mbstd_group_size=4,
        # Mixed precision (official num_fp16_res): the N highest resolutions of G's synthesis and
        # of D compute in fp16_dtype ('auto' = bfloat16 on GPU/TPU, float32 on CPU; 'bfloat16',
        # 'float16' or 'float32' force it); 0 = float32 everywhere. conv_clamp is 256 (models).
        num_fp16_res=p.get("num_fp16_res", 0), fp16_dtype=p.get("fp16_dtype", "auto")))
    c.data = common.data_config(p)
    # Augmentation of every D input (StyleGAN2-ADA; official train.py --aug): "none", "fixed"
    # (strength train.augment_p) or "ada" (p from 0, adapted; gan_zoo/recipes/ada.py).
    c.augment = p.get("augment", "none")
    c.train = ml_collections.ConfigDict(dict(
        num_steps=p["steps"], batch_size=p["batch"], grad_accum=1,
        loss_scale=p.get("loss_scale", 0.0),  # static; 0 = auto: 1024 with float16 layers, else 1
        lr_g=p["lr_g"], lr_d=p["lr_d"], b1=0.0, b2=0.99, adam_eps=1e-8,  # A8.8
        r1_gamma=p.get("gamma", 10.0), d_reg_interval=p.get("d_reg", 16),  # A8.2-3; 0 = not lazy
        pl_weight=p.get("pl_weight", 2.0), g_reg_interval=p.get("g_reg", 4),  # A8.4, A12.1: code 4
        pl_decay=0.01, pl_batch_shrink=2,
        style_mixing_prob=p["mixing"],  # A8.5 (0 for StyleGAN3)
        augment_p=p.get("augment_p", 0.2),  # p of augment="fixed" (official --p default)
        # ADA (official training_loop / --target): move p every 4 steps by ±batch·4/500k
        # towards E[sign(D(real))] = 0.6.
        ada_target=0.6, ada_interval=4, ada_kimg=500.0,
        ema_kimg=p["ema_kimg"], ema_rampup=p.get("ema_rampup", 0.0),  # A8.7; 0 = no ramp-up
        blur_sigma=p.get("blur_sigma", 0.0), blur_fade_kimg=p.get("blur_fade_kimg", 0.0),
        magnitude_ema_kimg=20.0,  # StyleGAN3 only: β = 0.5 ** (batch / 20k)
        # Progressive growing (configs A-D; phase_kimg 0 = none). A growing run is
        # total_kimg long (num_steps 0); resolutions missing from batch_sizes use batch_size,
        # missing from lr_by_res use lr_g / lr_d.
        phase_kimg=p.get("phase_kimg", 0.0), total_kimg=p.get("total_kimg", 0.0),
        start_resolution=p.get("start_res", 8),
        batch_sizes={str(r): b for r, b in p.get("batch_sizes", {}).items()
                     if r <= p["resolution"]},
        lr_by_res={str(r): v for r, v in p.get("lr_by_res", {}).items()},
        reset_opt_at_stage=True,  # fresh Adam moments at each phase start [code]
        # On CPU: "eigen" (wide layers) or "ynnpack" (XLA's default; tiny nets): see
        # gan_zoo.train.step.make_train_step. The paper presets at StyleGAN2's widths: eigen.
        xla_cpu_convs=p.get("xla_cpu_convs", "ynnpack")))
    c.sample = ml_collections.ConfigDict(dict(
        truncation=p.get("truncation", 1.0),  # ψ; 1 (or <= 0) = none; Fig. 12 uses 0.5
        standing_stats_batch_size=min(p["batch"], 32)))  # sample batch (no standing stats)
    common.run_blocks(c, p)
    return c


def get_config(arg=None):
    a = common.parse_arg(arg, preset="ffhq1024", steps=0, batch=0, res=0, gamma=-1.0,
                         total_kimg=0.0, phase_kimg=0.0, smoke=False)
    p = dict(common.check_preset(a.preset, PRESETS))
    return finish(p, a, "stylegan2")


def finish(p: dict, a, family: str):
    """Applies the arg overrides and the `smoke` block to preset `p`; builds the config."""
    for key in ("steps", "batch", "res", "total_kimg", "phase_kimg"):
        if a.get(key, 0):
            p["resolution" if key == "res" else key] = a[key]
    if a.gamma >= 0:
        p["gamma"] = a.gamma
    if a.smoke:  # CPU smoke run: tiny everything
        p.update(resolution=32, batch=8, steps=10, z_dim=32, w_dim=32, mapping_layers=2,
                 channel_base=256, channel_max=16, ckpt_every=5, log_every=5, image_every=10,
                 grid=16, data="photos", flip=False, ema_kimg=0.1, num_fp16_res=0,
                 xla_cpu_convs="ynnpack")
        if p.get("phase_kimg"):  # growing: 8 -> 16 -> 32 in 16-image phases, 14 steps
            p.update(steps=0, phase_kimg=0.016, total_kimg=0.08, batch_sizes={8: 8, 16: 4},
                     log_every=1, image_every=0, grid=4)
    c = base(p, family)
    c.preset = a.preset
    return c
