"""StyleGAN3 (Karras et al., "Alias-Free GANs", NeurIPS 2021), spec stylegan_xl_and_t.md §1.1.

    python experiments/main.py --config=configs/stylegan3.py:photos --workdir=/tmp/sg3

Args (after the colon, comma separated): a preset name, then overrides such as `steps=2000`,
`batch=16`, `res=256`, `gamma=8.2`, `smoke`.
"""

from configs import common
from configs import stylegan2 as sg2

# NVlabs train.py defaults (spec §1.1): Adam(0, 0.99), G lr 0.0025, D lr 0.002, lazy R1 every 16,
# EMA half-life batch·10/32 kimg with ramp-up 0.05, no style mixing and no path length; config R
# blurs D's inputs (σ = 10 px fading over batch·200/32 kimg). γ per dataset (official README:
# 32.8 FFHQ-U 1024, 8.2 AFHQv2 512 with T); 25M images (train.py --kimg 25000).
# ADA on (train.py --aug=ada is the default, and the README's StyleGAN3 commands keep it).
_BASE = dict(batch=32, steps=781_250, lr_g=0.0025, lr_d=0.002, ema_kimg=10.0, ema_rampup=0.05,
             mixing=0.0, pl_weight=0.0, flip=True, augment="ada",
             num_fp16_res=4)  # train.py: G layers / D blocks in reduced precision, clamp 256
PRESETS = {
    "ffhq1024_t": dict(_BASE, variant="config-t", resolution=1024, data="ffhq", gamma=32.8),
    "ffhq1024_r": dict(_BASE, variant="config-r", resolution=1024, data="ffhq", gamma=32.8,
                       blur_sigma=10.0, blur_fade_kimg=200.0),
    "afhq512_t": dict(_BASE, variant="config-t", resolution=512, data="afhq", gamma=8.2),
    # 2-core CPU, 32x32 crops of the built-in photos: tiny config-T G with N = 4 layers (not 14)
    # and 16 channels; γ = 1 (γ scales with resolution²: 32.8 at 1024 would be far too strong).
    # Measured (benchmarks/RESULTS.md, photos_quality.py vs real crops): 800 steps ~ 215 CPU-s
    # with the faster ops (~2 min on 2 idle cores): SWD 119, precision 0.20, recall 0.003,
    # FD 1.71 vs 140 / 0.01 / 0.000 / 3.10 at the former 200 steps (real: 15 / 0.94 / 0.94 / 0.01).
    # No ADA: at its official speed p can rise by at most 1,600 / 500k = 0.013 in 800 steps.
    "photos": dict(_BASE, variant="config-t", resolution=32, data="photos", batch=8, steps=800,
                   gamma=1.0, z_dim=32, w_dim=32, mapping_layers=2, num_layers=4,
                   channel_base=256, channel_max=16, ema_kimg=1.0, ckpt_every=100, log_every=20,
                   image_every=100, grid=16, num_fp16_res=0, augment="none"),
}


def get_config(arg=None):
    a = common.parse_arg(arg, preset="ffhq1024_t", steps=0, batch=0, res=0, gamma=-1.0,
                         smoke=False)
    p = dict(common.check_preset(a.preset, PRESETS))
    # EMA half-life and blur fade scale with the batch (train.py: batch·10/32, batch·200/32).
    scale = (a.batch or p["batch"]) / 32
    p["ema_kimg"] = p["ema_kimg"] * scale if a.preset != "photos" else p["ema_kimg"]
    p["blur_fade_kimg"] = p.get("blur_fade_kimg", 0.0) * scale
    return sg2.finish(p, a, "stylegan3")
