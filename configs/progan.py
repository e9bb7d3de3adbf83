"""ProGAN (Karras et al., "Progressive Growing of GANs", ICLR 2018), spec stylegan2_and_progan.md
Part B. Trains with progressive growing: one trainer stage per fade-in / stabilisation phase.

    python experiments/main.py --config=configs/progan.py:photos --workdir=/tmp/pg

Args (after the colon, comma separated): a preset name, then overrides `total_kimg=...`,
`phase_kimg=...`, `res=...`, `smoke`. Durations are in kimg (thousands of real images shown to
D); the number of train steps follows from the per-resolution batch sizes.
"""

import ml_collections

from configs import common

# Minibatch per resolution, PG App. A.1 (spec B9): 16 up to 128², then 14, 6, 3.
_PAPER_BATCH = {4: 16, 8: 16, 16: 16, 32: 16, 64: 16, 128: 16, 256: 14, 512: 6, 1024: 3}

PRESETS = {
    # PG §6.3 / App. A.1 (spec B2, B8, B9): CelebA-HQ 1024², Table 2 networks, Adam(1e-3, 0,
    # 0.99, 1e-8), WGAN-GP λ = 10 (code), drift 0.001, EMA 0.999, 800k images per phase,
    # mirror augmentation. Length 19,000 kimg is the official preset-v1-1gpu (spec B14.4).
    # Adam is reset at every phase start as in the official code (`reset_opt_for_new_lod`).
    "celebahq1024": dict(variant="celebahq-1024", resolution=1024, data="celebahq",
                         flip=True, batch=_PAPER_BATCH, phase_kimg=800, total_kimg=19_000),
    # 2-core CPU: the built-in photos (random crops), 4 -> 8 -> 16 -> 32 in a few minutes,
    # narrow networks (4: 64, 8: 64, 16: 32, 32: 16 maps), 4k images per phase (1,750 steps).
    # G EMA 0.99 (half-life 69 steps, within a 250-step phase): at the paper's 0.999 (half-life
    # 693 steps) the sampled G mixes stale stages and gave saturated pink noise (SWD 237 = init,
    # precision 0, FD 5.80); 0.99: SWD 132, precision 0.15, FD 2.13 (benchmarks/RESULTS.md).
    "photos": dict(variant="cifar10-32", resolution=32, data="photos", flip=True,
                   batch={4: 16, 8: 16, 16: 16, 32: 16}, phase_kimg=4.0, total_kimg=28.0,
                   fmap_base=256, fmap_max=64, latent_size=64, mbstd_group_size=4,
                   ema_decay=0.99, ckpt_every=200, log_every=50, image_every=200, grid=36),
}


def get_config(arg=None):
    a = common.parse_arg(arg, preset="celebahq1024", total_kimg=0.0, phase_kimg=0.0, res=0,
                         smoke=False)
    p = dict(common.check_preset(a.preset, PRESETS))
    for key, field in (("total_kimg", "total_kimg"), ("phase_kimg", "phase_kimg"),
                       ("res", "resolution")):
        if a[key]:
            p[field] = a[key]
    if a.smoke:  # CPU smoke run: tiny networks grow 4 -> 8 -> 16 in a few steps
        p.update(variant="_test32", resolution=32, data="photos", fmap_base=0, fmap_max=0,
                 latent_size=0, mbstd_group_size=0, batch={4: 8, 8: 8, 16: 4, 32: 4},
                 phase_kimg=0.016, total_kimg=0.056, ckpt_every=4, log_every=1,
                 image_every=0, grid=4)
    c = _base(p)
    c.preset = a.preset
    return c


def _base(p: dict) -> ml_collections.ConfigDict:
    c = common.run_base("progan")
    c.model = ml_collections.ConfigDict(dict(
        variant=p["variant"], resolution=p["resolution"], n_classes=0,
        # Overrides of the variant's row; 0 keeps the row's value.
        fmap_base=p.get("fmap_base", 0), fmap_max=p.get("fmap_max", 0),
        latent_size=p.get("latent_size", 0), mbstd_group_size=p.get("mbstd_group_size", 0),
        # Reduced precision (not in PG; the StyleGAN2-ADA rule): the N highest resolutions of
        # G and D compute in fp16_dtype ('auto' = bfloat16 on GPU/TPU, float32 on CPU);
        # conv_clamp clamps their block / RGB convs (0 = off). 0 = float32 everywhere.
        num_fp16_res=p.get("num_fp16_res", 0), fp16_dtype=p.get("fp16_dtype", "auto"),
        conv_clamp=p.get("conv_clamp", 0.0)))
    c.data = common.data_config(p)
    c.train = ml_collections.ConfigDict(dict(
        lr=1e-3, b1=0.0, b2=0.99, adam_eps=1e-8,  # PG App. A.1, no decay
        gp_lambda=10.0, gp_target=1.0, drift=1e-3,  # spec B8 (γ = 750 for CIFAR-10, §6.5)
        ema_decay=p.get("ema_decay", 0.999), cond_weight=1.0,  # PG App. A.1: 0.999
        phase_kimg=p["phase_kimg"],  # each fade-in and each stabilisation (spec B2)
        total_kimg=p["total_kimg"],  # run length; growth ends after (2·levels − 1) phases
        batch_sizes={str(r): b for r, b in p["batch"].items() if r <= p["resolution"]},
        grad_accum=1,
        loss_scale=p.get("loss_scale", 0.0),  # static; 0 = auto: 1024 with float16 layers, else 1
        reset_opt_at_stage=True))  # fresh Adam moments at each phase start [code]
    c.sample = ml_collections.ConfigDict(dict(truncation=0.0, standing_stats_batch_size=16))
    common.run_blocks(c, p)
    return c
