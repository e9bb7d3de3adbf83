"""StyleGAN-T (Sauer, Karras, Laine, Geiger, Aila, ICML 2023), spec stylegan_xl_and_t.md §2.

    python experiments/main.py --config=configs/stylegan_t.py:digits_text --workdir=/tmp/sgt

Args (after the colon, comma separated): a preset name, then `batch=`, `smoke`, `fsdp=N` (a mesh
axis of N devices sharding every parameter and Adam slot: the 1.02B-parameter full512 G does
not fit replicated beside the CLIP and DINO towers; `--mode=summary` prints bytes per device).
The run's stages
are config.train.schedule, "PHASE@RES:STEPS,...": primary stages train G and D at RES^2, the
"text" stage trains only G's CLIP text encoder (the secondary phase, §3.3). Weight files (local
state dicts, .safetensors / .npz): --config.model.clip_weights (open_clip ViT-L-14, OpenAI
weights: the text encoder and the CLIP-guidance image tower) and --config.model.dino_weights
(timm vit_small_patch16_224_dino: the D feature net). The paper presets need both; digits_text
uses tiny random towers unless they are given (the run logs which).
"""

import ml_collections

from configs import common

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# Grid / --mode=sample prompts of the digits presets: label k -> the data's first phrasing of k
# (gan_zoo.data.captions.PHRASINGS[0]), so digits_quality's label agreement reads prompt-following.
DIGIT_PROMPTS = tuple(f"a handwritten digit {w}" for w in DIGIT_WORDS)
COCO_PROMPTS = ("a photo of a cat", "a red car parked on a street", "a bowl of fruit on a table",
                "a lighthouse at sunset", "an astronaut riding a horse", "a living room")

# Paper settings (spec §2.6, App. A Tables 4-5): batch 2048; Adam lr 0.002 G and D, betas
# (0, 0.99) [C]; CLIP weight 0.2 primary / 50 secondary, text-encoder lr 3e-6 [C]; EMA
# half-life batch·10/32 kimg [C]; D blur σ 32 over 1000 kimg [C] (§6.16).
# lite: 64^2 directly; "25 million iterations" read as 25M images (§6.12): 25e6 / 2048 = 12,207.
# full: Table 5 iterations: primary 16^2 118k, 32^2 78k, 64^2 57k; secondary 20k at 64^2; primary
# 128^2 10k, 256^2 6k, 512^2 3k.
_PAPER = dict(batch=2048, feature_nets="pretrained", data="caption_tar", grid=64,
              prompts=COCO_PROMPTS, metrics="fid,clip_score")
PRESETS = {
    "lite64": dict(_PAPER, variant="lite", resolution=64, schedule="primary@64:12207"),
    "full512": dict(_PAPER, variant="full", resolution=512, schedule=(
        "primary@16:118000,primary@32:78000,primary@64:57000,text@64:20000,"
        "primary@128:10000,primary@256:6000,primary@512:3000")),
    # 2-core CPU: scikit-learn digits with captions ("a handwritten digit seven", 4 phrasings) at
    # 32^2; the paper's schedule shape in miniature (primary 16^2, text encoder at 16^2, primary
    # 32^2). Tiny G (8-32^2, 64 channels, 1 residual pair per block, z 32) and tiny RANDOM towers
    # unless weight files are given: CLIP text width 64 x 2 layers (embedding 64, context 16),
    # CLIP image tower width 32 x 2 on 32^2 (patch 8), DINO width 32 x 4 on 32^2 (patch 8, taps
    # at every block).
    "digits_text": dict(
        variant="tiny", resolution=32, batch=32, feature_nets="random", data="digits_captions",
        # A long 16^2 stage (issue #15 session 7; benchmarks/RESULTS.md): 16^2 2,000 + text 100
        # + 32^2 500 with clip_augment below: 80.6% / 73.7% label agreement at 32^2 on seeds 0 /
        # 1, recall 0.15 / 0.06, FD 2.06 / 3.00, 949 / 988 CPU s (was 400 + 100 + 900, no
        # clip_augment: 48.1%, recall 0.00, FD 7.27, 1,096 CPU s, seed 0).
        schedule="primary@16:2000,text@16:100,primary@32:500", prompts=DIGIT_PROMPTS,
        z_dim=32, channel_base=2048, channel_max=64, num_res_blocks=1,
        clip_variant="_test", clip=dict(clip_embed_dim=64, clip_text_width=64,
                                        clip_text_layers=2, clip_text_heads=2, clip_context=16,
                                        clip_vision_width=32, clip_vision_depth=2,
                                        clip_vision_heads=2, clip_vision_patch=8,
                                        clip_image_size=32),
        d_dino=dict(d_dino_width=32, d_dino_depth=4, d_dino_heads=2, d_dino_patch=8),
        d_hooks="0,1,2,3", d_input_size=32, blur_sigma=2.0, blur_fade_kimg=8.0, ema_kimg=1.0,
        ckpt_every=200, log_every=20, image_every=200, grid=20, metrics="fid,kid,pr",
        # Random tiny towers cannot tell "a handwritten digit seven" from "... two" (text
        # cosine 0.86 across digits, 0.47 across phrasings of one digit): the CLIP is first fit
        # on the captions (300 contrastive steps, ~30 CPU s; recipes/stylegan_t_clipfit.py).
        clip_fit_steps=300,
        # G games the tiny fitted CLIP guidance tower (one image per prompt): DiffAugment before
        # it keeps samples varied (400-step 16^2 preset: 49.9% vs 48.1%, recall 0.07 vs 0.00,
        # FD 5.64 vs 7.27, seed 0). Long schedule without it, seed 0, at 16^2 step 1,400: 82.0%
        # vs 61.0% but recall 0.00 vs 0.13, FD 6.12 vs 3.79 (its 32^2 end not measured yet).
        clip_augment="translation,cutout",
        # Session 12 (benchmarks/RESULTS.md): the preset's D did not discriminate (logits
        # +-0.1, hinge 1.9 of 2.0; a fresh D trained on real vs G's digits: AUC 0.54): its
        # DiffAugment translation (+-4 px, half the tiny DINO's 8-px patch) blinds the random
        # DINO. Kept: the D's DiffAugment without translation (color,cutout), the DINO fit on
        # the captions (1,000 steps, 20 CPU s), GAN-CLS's matching-aware D term (reals under
        # another sample's caption as fakes), and no CLIP guidance in the primary stages (the
        # text stage keeps its weight 50): 99.6% / recall 0.12 / FD 1.60 and 97.1% / 0.09 /
        # 2.13 on seeds 0 / 1, ~1,100 CPU s (was 78.4% / 0.11 / 2.98, seed 0, 1,304 CPU s).
        d_diffaug_policy="color,cutout", dino_fit_steps=1000, mismatch_weight=1.0,
        clip_weight=0.0),
}


def base(p: dict) -> ml_collections.ConfigDict:
    """The full StyleGAN-T config for a preset dict `p`."""
    c = common.run_base("stylegan_t")
    clip_sizes = dict.fromkeys(("clip_embed_dim", "clip_text_width", "clip_text_layers",
                                "clip_text_heads", "clip_context", "clip_vision_width",
                                "clip_vision_depth", "clip_vision_heads", "clip_vision_patch",
                                "clip_image_size"), 0)
    clip_sizes.update(p.get("clip", {}))
    dino = dict.fromkeys(("d_dino_width", "d_dino_depth", "d_dino_heads", "d_dino_patch"), 0)
    dino.update(p.get("d_dino", {}))
    c.model = ml_collections.ConfigDict(dict(
        variant=p["variant"], resolution=p["resolution"],
        # G sizes; 0 = the stylegan_t.VARIANTS row's value (c_dim = the CLIP embedding width).
        z_dim=p.get("z_dim", 0), channel_base=p.get("channel_base", 0),
        channel_max=p.get("channel_max", 0), num_res_blocks=p.get("num_res_blocks", 0),
        fused_modconv="auto",
        # CLIP (text encoder + guidance image tower): a feature_nets.clip variant, sizes 0 = its.
        clip_variant=p.get("clip_variant", "ViT-L-14"), **clip_sizes,
        # D (spec §2.4): DINO ViT-S/16 sizes 0 = its; taps; input side; heads.
        **dino, d_hooks=p.get("d_hooks", "2,5,8,11"), d_input_size=p.get("d_input_size", 224),
        d_cmap_dim=64, d_diffaug=True, d_p_crop=0.5, d_proj_seed=0,
        # D's DiffAugment ops and the fill of translation/cutout (official: all three, fill 0)
        d_diffaug_policy=p.get("d_diffaug_policy", "color,translation,cutout"),
        d_diffaug_fill=p.get("d_diffaug_fill", 0.0),
        d_bn_devices=0,  # BatchNormLocal per device of: 0 = the 'data' devices (official), k
        # "pretrained": the weight files below must exist; "random": seeded random towers.
        feature_nets=p["feature_nets"], clip_weights="", dino_weights="",
        # random towers only: fit the random CLIP contrastively on the run's captions for this
        # many steps before training (recipes/stylegan_t_clipfit.py; CPU presets' stand-in
        # for the pretrained CLIP); 0 = off (the paper presets: pretrained weights)
        clip_fit_steps=p.get("clip_fit_steps", 0),
        # random towers only: then fit the D's random DINO contrastively against that CLIP's
        # caption embeddings for this many steps (the CPU presets' stand-in for the paper's
        # pretrained DINO, as StyleGAN-XL's feature_fit_steps); 0 = off (the paper presets)
        dino_fit_steps=p.get("dino_fit_steps", 0)))
    c.data = common.data_config(p)
    c.data.context_length = c.model.clip_context or 77  # CLIP tokens per caption
    c.train = ml_collections.ConfigDict(dict(
        num_steps=0,  # set by the schedule
        schedule=p["schedule"], batch_size=p["batch"], grad_accum=1,
        lr_g=0.002, lr_d=0.002, lr_text=3e-6, b1=0.0, b2=0.99, adam_eps=1e-8,
        clip_weight=p.get("clip_weight", 0.2), clip_weight_text=50.0,
        # DiffAugment policy on G's images before the CLIP-guidance tower (and on the CLIP fit's
        # images): "" = none, the paper's plain crops
        clip_augment=p.get("clip_augment", ""),
        text_phase_trains_d=False,  # True: D keeps training in the text stage (official loop)
        # MSGAN's mode-seeking term on G (Mao et al. 2019; not in StyleGAN-T): 0 = off
        ms_weight=p.get("ms_weight", 0.0),
        # GAN-CLS's matching-aware D term (Reed et al. 2016; not in StyleGAN-T): reals under
        # another sample's caption as an extra hinge fake; 0 = off
        mismatch_weight=p.get("mismatch_weight", 0.0),
        blur_sigma=p.get("blur_sigma", 32.0), blur_fade_kimg=p.get("blur_fade_kimg", 1000.0),
        ema_kimg=p.get("ema_kimg", 0.0), ema_rampup=0.05))  # ema_kimg 0: batch·10/32
    c.sample = ml_collections.ConfigDict(dict(
        truncation=1.0,  # ψ of the z part toward f̄; 1 (or <= 0) = none
        prompts=p["prompts"],  # what integer labels (grids, --mode=sample) draw
        standing_stats_batch_size=min(p["batch"], 32)))
    common.run_blocks(c, p)
    return c


def get_config(arg=None):
    a = common.parse_arg(arg, preset="lite64", batch=0, smoke=False, fsdp=0)
    p = dict(common.check_preset(a.preset, PRESETS))
    if a.batch:
        p["batch"] = a.batch
    if a.smoke:  # a few CPU steps of the digits model: every stage kind, growing 16 -> 32
        p.update({k: v for k, v in PRESETS["digits_text"].items()})
        p.update(batch=8, schedule="primary@16:2,text@16:1,primary@32:2", channel_max=32,
                 ckpt_every=2, log_every=1, image_every=0, grid=4, clip_fit_steps=2,
                 dino_fit_steps=2, clip_weight=0.2)  # the tests run the paper's guidance too
        p["clip"] = dict(p["clip"], clip_embed_dim=16, clip_text_width=16, clip_context=8,
                         clip_vision_width=16, clip_vision_depth=1)
        p["d_dino"] = dict(p["d_dino"], d_dino_width=16, d_dino_depth=2)
        p["d_hooks"] = "0,1,1,1"
    c = base(p)
    common.mesh_and_rules(c, a.fsdp)  # fsdp=N: params and Adam state sharded N ways (full512)
    c.preset = a.preset
    return c
