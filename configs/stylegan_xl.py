"""StyleGAN-XL (Sauer, Schwarz, Geiger, SIGGRAPH 2022), spec stylegan_xl_and_t.md §1.

    python experiments/main.py --config=configs/stylegan_xl.py:digits --workdir=/tmp/sgxl_digits

Args (after the colon, comma separated): a preset name, then `res=` (the final stage; the run
trains every stage from the 16^2 stem up to it in one workdir), `batch=` (every stage),
`kimg=` (every stage's length), `smoke`. A stage can also start from another run, the way the
official `--superres --path_stem` does:

    python experiments/main.py --config=configs/stylegan_xl.py:imagenet,res=64 \
        --config.init_from=<workdir of the 32^2 run> --workdir=...

Feature-network weights are local timm state dicts (.safetensors / .npz): --config.model.
effnet_weights (tf_efficientnet_lite0), deit_weights (deit_base_distilled_patch16_224),
clf_weights (deit_small_distilled_patch16_224, the guidance classifier, stages above 32^2).
"""

import ml_collections

from configs import common

# Paper / official settings (spec §1.7): batch 2048 (16^2, 32^2), 256 (64^2-256^2), 128 (512^2,
# 1024^2) [P]; Adam(0, 0.99) G lr 0.0025, D lr 0.002 with the lazy rescaling (G interval 4,
# D 16) [C]; EMA half-life batch·10/32 kimg, ramp-up 0.05 [C]; D blur σ 2 over 300 kimg [C];
# path length 2 from 1M images, stem only [C]; guidance λ 8 above 32^2 [P]; fp16 in the 4
# highest-rate layers [C]. The paper trains each stage until FID stops improving (no fixed
# length); stage_kimg holds the official train.py default --kimg 25000 per stage run.
_IMAGENET_BATCH = {16: 2048, 32: 2048, 64: 256, 128: 256, 256: 256, 512: 128, 1024: 128}
_ALL_RES = (16, 32, 64, 128, 256, 512, 1024)
_BASE = dict(variant="imagenet", n_classes=1000, data="imagenet2012", flip=True,
             batch=2048, batch_sizes=_IMAGENET_BATCH, stage_kimg=dict.fromkeys(_ALL_RES, 25_000),
             num_fp16_res=4, feature_nets="pretrained", cls_weight=8.0,
             metrics="fid,sfid,rfid,is,pr,eqt_int")
# FFHQ / Pokemon: the official README's settings for small or curated datasets (cbase 16384,
# cmax 256 before train.py doubles them, 7 stem layers, 4-layer heads: variant "small"), and its
# command lines (batch 64, --mirror=1, --kimg 10000); unconditional, so no guidance.
_SMALL = dict(_BASE, variant="small", n_classes=0, batch=64, batch_sizes={},
              stage_kimg=dict.fromkeys(_ALL_RES, 10_000), cls_weight=0.0,
              metrics="fid,sfid,rfid,pr,eqt_int")
PRESETS = {
    "imagenet": dict(_BASE, resolution=1024),
    "ffhq": dict(_SMALL, resolution=1024, data="ffhq"),
    # An image folder (data.data_dir) of the Pokemon set the paper uses.
    "pokemon": dict(_SMALL, resolution=1024, data="folder"),
    # CIFAR-10 (README checkpoint, FID 1.85): the ImageNet model with 10 classes at 16^2 + 32^2;
    # the guidance never runs (32^2 is not above 32^2).
    "cifar10": dict(_BASE, resolution=32, n_classes=10, data="cifar10", flip=False,
                    stage_kimg=dict.fromkeys(_ALL_RES, 10_000)),
    # 2-core CPU: scikit-learn digits (10 classes) at 32^2, a 16^2 stem then a 32^2 stage in one
    # run; tiny G (imagenet_test widths) and D: a random 4-block width-32 ViT (patch 8 on 32^2
    # inputs, tapped at every block; feature_nets=random, logged) with head depths for 128^2.
    # Only the ViT: EfficientNet-lite0 has no smaller variant and tripled the step time
    # (measured at batch 16 on a loaded 2-core box: 11-14 s vs 3.5-4 s per step);
    # --config.model.d_backbones=deit_base_distilled_patch16_224,tf_efficientnet_lite0 adds it.
    # G and D lr x2 and no D blur: the best of the measured stem trials (benchmarks/RESULTS.md
    # 'StyleGAN-XL digits preset trials'). In place of the paper's ImageNet-pretrained nets,
    # the D's random ViT is first fitted on the digits labels (feature_fit_steps, ~96%;
    # recipes/stylegan_xl_fit.py): stem agreement 30% vs 22-24% (trial t7). No guidance (32^2
    # is not above 32^2); from the stem on (cls_min_res=0, clf_patch=8) it made FD worse (t8).
    # Not kept (session 4): channel_max 32 (t9); the mapping at lr multiplier 1 (stem 36.5% but
    # the full runs F2/F3 lost recall and FD), also with a 300-step stem and 100 steps at 32^2.
    # Session 6 (not in the paper, logged as such): GAN-CLS's matching-aware D term (reals under
    # a wrong label as an extra hinge fake, train.mismatch_weight 1): the D's class margin on G's
    # samples goes from ~0 to clearly positive (pairwise 0.49-0.61 -> 0.73-0.78 at the stem's
    # end) and the stem's agreement +6.5 / +12 points on two seeds (recall as before, FD +1-2);
    # d_nominal_res 128 (0.6x the D's flops, 1x1 logits per head; session 5: stem agreement as
    # 64 with better recall and FD) keeps a 32^2 stage of 600 steps (9.6 kimg; 200 left the
    # fresh head at 29%): full run 41.2% / recall 0.23 / FD 7.9 in 747 CPU s, vs 22.9% / 0.09
    # / 12.3 in 674 for the session-3 preset.
    # Session 7: a 300-step stem (16: 4.8 kimg; was 3.2): full runs 47.4% / recall 0.29 / FD 7.8
    # (seed 0, 891 CPU s) and 56.0% / 0.33 / 6.6 (seed 1) vs 41.2% / 0.23 / 7.9 and 39.5% / 0.24 /
    # 10.3 with 200 steps. Stem proxies, not kept: mismatch_weight 2 (37.0% vs 39.7%, seed 0);
    # the D's DiffAugment translation,cutout at fill -1 (d_diffaug_*: 38.2%, FD 9.3 vs 10.3).
    # Session 10: on jax 0.10.2 that preset scored 10.5% / recall 0.06 / FD 32 (seed 0): its ViT,
    # fitted on 32^2 digits only, served the stem's upsampled 16^2 inputs poorly (a 16^2-only
    # run of the same stem: 47.4%) and the stem drew colour blobs. feature_fit_stages (half of
    # each fit batch pooled to 16^2): 55.1% / 0.09 / 8.0 and 54.6% / 0.33 / 6.5 (seeds 0, 1);
    # a 2,000-step fit (97% vs 93-96%): 60.0% / 0.28 / 7.2 and 64.9% / 0.24 / 6.1. Not kept:
    # guidance in the 32^2 stage (33%), feature_fit_tint (grey digits but 47.4% vs 60.0%).
    # MSGAN's mode seeking (ms_weight 0.05, not in the paper): 60.8% / 0.38 / 5.8 and 69.0% /
    # 0.53 / 4.7 (seeds 0, 1).
    # Session 11: at the official head widths (up to 512 channels) the D's heads held 8.0M
    # weights and its forward + backward took 14.6 GFLOP per batch of 16; capped at 64
    # (d_head_channel_max, not in the paper) 3.4 GFLOP and ~2.2x the images per second, so
    # ~1,040 CPU s (11 min wall with the fit) buy a 600-step stem and a 1,600-step 32^2 stage
    # (were 300 + 600): 94.9% / 0.49 / 1.29 and 90.0% / 0.48 / 1.94 (seeds 0, 1); the same cap
    # at 600 + 1,200 steps: 91.4% / 0.48 / 1.42 and 88.9% / 0.42 / 2.08; with feature_fit_tint
    # 75.8% / 0.47 / 2.50 (seed 0).
    # Session 12: heads capped at 48 with a 1,800-step 32^2 stage (28.8 kimg, ~920-990 CPU s):
    # 91.7% / 0.53 / 1.13 and 91.8% / 0.56 / 1.25 (seeds 0, 1): recall and FD within issue
    # #16's bar on both seeds; cap 32 with 2,000 steps: 94.9% / 0.37 / 1.31 and 90.7% / 0.54 /
    # 1.54 (recall lost on seed 0).
    "digits": dict(_BASE, variant="imagenet_test", resolution=32, n_classes=10, data="digits",
                   flip=False, batch=16, batch_sizes={}, stage_kimg={16: 9.6, 32: 28.8},
                   num_fp16_res=0, feature_nets="random", z_dim=16, w_dim=32, embed_rows=10,
                   embed_dim=16, d_backbones="deit_base_distilled_patch16_224",
                   d_vit=(32, 4, 2), d_vit_patch=8, d_vit_hooks="0,1,2,3", d_resize_to=32,
                   d_nominal_res=128, d_head_channel_max=48, d_interp224="true",
                   ema_kimg=0.5, blur_sigma=0.0,
                   blur_fade_kimg=1.0, lr_g=0.005, lr_d=0.004, feature_fit_steps=2000,
                   feature_fit_stages=True, mismatch_weight=1.0, ms_weight=0.05,
                   ckpt_every=100, log_every=10, image_every=100, grid=20,
                   metrics="fid,kid,is,rfid,pr"),
}


def base(p: dict) -> ml_collections.ConfigDict:
    """The full StyleGAN-XL config for a preset dict `p`."""
    c = common.run_base("stylegan_xl")
    vit_w, vit_d, vit_h = p.get("d_vit", (0, 0, 0))
    c.model = ml_collections.ConfigDict(dict(
        variant=p["variant"], resolution=p["resolution"], n_classes=p["n_classes"],
        stem_resolution=16,
        # G sizes; 0 = the stylegan_xl.VARIANTS row's value.
        z_dim=p.get("z_dim", 0), w_dim=p.get("w_dim", 0), channel_base=p.get("channel_base", 0),
        channel_max=p.get("channel_max", 0), stem_layers=p.get("stem_layers", 0),
        head_layers=p.get("head_layers", 0), embed_rows=p.get("embed_rows", 0),
        embed_dim=p.get("embed_dim", 0),
        # lr multiplier of the mapping FCs; 0 = the Generator's 0.01 (StyleGAN2 App. B).
        mapping_lr_multiplier=p.get("mapping_lr_multiplier", 0.0),
        # Pretrained class table for G (official in_embeddings/tf_efficientnet_lite0.pkl or an
        # .npz 'embed' [rows, E]); "" = random init (logged when a file is used).
        embed_weights="",
        num_fp16_res=p["num_fp16_res"], fp16_dtype="auto", fused_modconv="auto",
        # Projected D (spec §1.4): backbones in logit order; ViT sizes 0 = DeiT-base's.
        d_backbones=p.get("d_backbones", "deit_base_distilled_patch16_224,tf_efficientnet_lite0"),
        d_vit_width=vit_w, d_vit_depth=vit_d, d_vit_heads=vit_h,
        d_vit_patch=p.get("d_vit_patch", 0),
        d_vit_hooks=p.get("d_vit_hooks", "2,5,8,11"), d_resize_to=p.get("d_resize_to", 224),
        d_nominal_res=p.get("d_nominal_res", 256), d_interp224=p.get("d_interp224", "auto"),
        d_cmap_dim=64, d_embed_dim=p.get("embed_dim", 0) or 320, d_diffaug=True, d_proj_seed=0,
        # Not in the paper (0 = the official widths, up to 512): a cap on the D heads' widths.
        d_head_channel_max=p.get("d_head_channel_max", 0),
        # D's DiffAugment ops and the fill of translation/cutout (official: all three, fill 0).
        d_diffaug_policy=p.get("d_diffaug_policy", "color,translation,cutout"),
        d_diffaug_fill=p.get("d_diffaug_fill", 0.0),
        d_bn_group="device",  # "device" (official: per GPU), "global" or k samples per group
        # "pretrained": the weight files below must exist; "random": seeded random nets.
        feature_nets=p["feature_nets"], effnet_weights="", deit_weights="", clf_weights="",
        clf_width=vit_w, clf_depth=vit_d, clf_heads=vit_h,  # 0 = DeiT-small's
        clf_patch=p.get("clf_patch", 0),
        clf_input=p.get("d_resize_to", 224),
        # feature_nets="random" only: fit the random ViTs (D's F2, the classifier) on the
        # data's labels for this many Adam steps before the GAN (0 = off; the paper's nets are
        # pretrained, recipes/stylegan_xl_fit.py).
        feature_fit_steps=p.get("feature_fit_steps", 0), feature_fit_batch=64,
        feature_fit_lr=3e-3,
        # Split each fit batch over the run's stage resolutions (reals pooled to each, as the D
        # sees them in that stage); False = all at the data's resolution.
        feature_fit_stages=p.get("feature_fit_stages", False),
        # The D's ViT also tells grey-scale reals from tinted copies (extra classes), so that its
        # features see colour as ImageNet-pretrained nets do (False = labels only).
        feature_fit_tint=p.get("feature_fit_tint", False)))
    c.data = common.data_config(p)
    c.train = ml_collections.ConfigDict(dict(
        num_steps=0,  # set by the stages (stage_kimg)
        batch_size=p["batch"], grad_accum=1,
        batch_sizes={str(r): b for r, b in p["batch_sizes"].items() if r <= p["resolution"]},
        stage_kimg={str(r): k for r, k in p["stage_kimg"].items() if r <= p["resolution"]},
        start_res=0,  # first stage; 0 = the stem, or the final stage with init_from
        lr_g=p.get("lr_g", 0.0025), lr_d=p.get("lr_d", 0.002), b1=0.0, b2=0.99, adam_eps=1e-8,
        g_reg_interval=4, d_reg_interval=16,  # lazy rescaling (D has no regulariser)
        pl_weight=2.0, pl_start_kimg=1000.0, pl_decay=0.01, pl_batch_shrink=2,
        # Guidance in the stages above cls_min_res (the paper: 32).
        cls_weight=p["cls_weight"], cls_min_res=p.get("cls_min_res", 32),
        # Not in the paper (0 = off): GAN-CLS's matching-aware D term (Reed et al. 2016), reals
        # under a wrong label as an extra hinge fake, at this weight (recipes/stylegan_xl.py).
        mismatch_weight=p.get("mismatch_weight", 0.0),
        # The same for G's samples G(z, y) under a wrong label y' (0 = off; not in GAN-CLS).
        mismatch_fake_weight=p.get("mismatch_fake_weight", 0.0),
        # Not in the paper (0 = off): MSGAN's mode-seeking term on G (Mao et al. 2019) at this
        # weight, G's batch in label pairs (recipes/stylegan_xl.py, losses.mode_seeking).
        ms_weight=p.get("ms_weight", 0.0),
        blur_sigma=p.get("blur_sigma", 2.0), blur_fade_kimg=p.get("blur_fade_kimg", 300.0),
        ema_kimg=p.get("ema_kimg", 0.0), ema_rampup=0.05))  # ema_kimg 0: batch·10/32
    c.sample = ml_collections.ConfigDict(dict(
        truncation=1.0,  # ψ toward the class's w_avg; 1 (or <= 0) = none
        standing_stats_batch_size=min(p["batch"], 32)))
    common.run_blocks(c, p)
    return c


def get_config(arg=None):
    a = common.parse_arg(arg, preset="imagenet", res=0, batch=0, kimg=0.0, smoke=False)
    p = dict(common.check_preset(a.preset, PRESETS))
    if a.res:
        p["resolution"] = a.res
    if a.batch:
        p.update(batch=a.batch, batch_sizes={})
    if a.kimg:
        p["stage_kimg"] = dict.fromkeys(_ALL_RES, a.kimg)
    if a.smoke:  # a few CPU steps of the digits model, two stages
        p.update({k: v for k, v in PRESETS["digits"].items() if k not in ("data",)})
        p.update(batch=8, stage_kimg={16: 0.016, 32: 0.016}, ckpt_every=2, log_every=1,
                 image_every=0, grid=4, data="digits", blur_sigma=2.0,  # blur path exercised
                 feature_fit_steps=0)  # no fit: the run test stays cheap
    c = base(p)
    c.preset = a.preset
    return c
