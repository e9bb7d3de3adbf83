"""Shared config helpers: `parse_arg` for "preset=imagenet128,res=256,smoke" strings and the
BigGAN-family base config used by configs/biggan.py and configs/biggan_deep.py."""

import ml_collections


def _convert(key: str, text: str, default):
    if isinstance(default, bool):
        if text.lower() in ("1", "true", "yes", ""):
            return True
        if text.lower() in ("0", "false", "no"):
            return False
        raise ValueError(f"config arg {key}: expected a boolean, got {text!r}")
    try:
        return type(default)(text) if default is not None else text
    except ValueError as e:
        raise ValueError(f"config arg {key}: expected {type(default).__name__}, got {text!r}") \
            from e


def parse_arg(arg, **defaults) -> ml_collections.ConfigDict:
    """Parses "a=1,b=x,flag" into a ConfigDict typed like `defaults`; rejects unknown keys.

    A bare word sets a boolean key to True, or else is the value of `preset` (so
    "imagenet128" means "preset=imagenet128").
    """
    out = dict(defaults)
    for token in filter(None, (arg or "").split(",")):
        key, eq, value = token.partition("=")
        key = key.strip()
        if not eq and not isinstance(defaults.get(key), bool) and "preset" in defaults:
            key, value = "preset", key
        if key not in defaults:
            raise ValueError(f"unknown config arg {key!r}; valid keys: {sorted(defaults)}")
        out[key] = _convert(key, value.strip(), defaults[key])
    return ml_collections.ConfigDict(out)


def check_preset(name: str, presets: dict) -> dict:
    if name not in presets:
        raise ValueError(f"unknown preset {name!r}; valid presets: {sorted(presets)}")
    return presets[name]


def run_base(recipe: str) -> ml_collections.ConfigDict:
    """The top-level fields every family's config shares: recipe name, seed, precision, hosts."""
    c = ml_collections.ConfigDict()
    c.recipe = recipe
    c.seed = 0
    c.matmul_precision = ""  # "" = JAX default; "highest" for bit-exact CPU tests
    c.distributed = False  # jax.distributed.initialize() (multi-host)
    # Arguments of jax.distributed.initialize(); empty/unset ones are auto-detected (TPU pods,
    # Slurm, Open MPI). E.g. --config.distributed_args.coordinator_address=10.0.0.1:1234.
    c.distributed_args = ml_collections.ConfigDict(dict(
        coordinator_address="", num_processes=0, process_id=-1))
    # G and D from official constructor kwargs instead of config.model's variant: a networks.json
    # written by gan_zoo.tools.convert ({"family", "G", "D"}); "" = built from config.model.
    c.networks = ""
    # Fine-tuning: a workdir (e.g. from gan_zoo.tools.convert) whose latest checkpoint's G, D and
    # G_ema start this run, with a fresh optimizer at step 0; only when --workdir has no checkpoint.
    c.init_from = ""
    # Resuming with a config that changes the state's shapes: False = stop naming the keys;
    # True = move the workdir's checkpoints aside (<step>.reset-<time>) and start from step 0.
    c.allow_reset = False
    # Take the workdir's run.lock even when its holder looks alive (a run on a lost machine).
    c.force_unlock = False
    return c


def data_config(p: dict) -> ml_collections.ConfigDict:
    """config.data of every image family: preset p's dataset name and x-flip."""
    return ml_collections.ConfigDict(dict(
        name=p["data"], data_dir="", split="train", flip=p.get("flip", False),
        # a dataset prepared by gan_zoo.tools.dataset, or an NVlabs zip / folder (wins over name)
        path="",
        # 'grain': data.path and the built-ins read through Grain (gan_zoo/data/grain_source.py;
        # the same batches as 'native', the hand-written readers); other sources ignore it
        loader="grain",
        shuffle_buffer=10_000, prefetch=2,
        # undecodable images skipped (each logged) before the run stops: < 1 a fraction of the
        # dataset, >= 1 a count
        max_bad_records=0.001))


def checkpoint_and_log(c, p: dict, sv_every: int = 0) -> None:
    """c.checkpoint and c.log of every family from preset p (ckpt_every, log_every,
    image_every, grid); sv_every: steps between top singular value logs (0 = off)."""
    c.checkpoint = ml_collections.ConfigDict(dict(
        every_steps=p.get("ckpt_every", 5000), keep=3, use_async=True,
        # also keep the checkpoint with the best periodic-eval value of this metric ('fid';
        # '' = off) in <workdir>/checkpoints_best; best_mode 'min' | 'max' | '' (known metrics)
        best_metric="", best_mode=""))
    c.log = ml_collections.ConfigDict(dict(
        every_steps=p.get("log_every", 100), image_every_steps=p.get("image_every", 5000),
        sv_every_steps=sv_every, sv_layers=".", grid_size=p.get("grid", 64)))


# gan_zoo.train.sharding.FSDP_RULES as data (configs import no gan_zoo code; a test keeps the two
# equal): dim -2 of every params / opt_state / ema_params leaf over the `fsdp` axis.
FSDP_RULES = ((r"^(params|opt_state|ema_params)/", ("fsdp", None)),)


def mesh_and_rules(c, fsdp: int = 0) -> None:
    """c.mesh and c.param_rules: the batch over `data` and everything replicated, or with
    fsdp > 1 an `fsdp` axis of that size holding a shard of every parameter, Adam slot and EMA
    leaf (sharding.FSDP_RULES; the batch then splits over data x fsdp)."""
    if fsdp > 1:
        c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": fsdp})
        c.param_rules = FSDP_RULES
    else:
        c.mesh = ml_collections.ConfigDict({"data": -1})
        c.param_rules = ()  # ((regex, (axis or None, ...)), ...); default: all replicated


def run_blocks(c, p: dict, sv_every: int = 0) -> None:
    """The blocks every family's config ends with: checkpoint, log, eval and mesh/param_rules."""
    checkpoint_and_log(c, p, sv_every)
    c.eval = eval_config(p)
    mesh_and_rules(c)


def biggan_base(p: dict, family: str) -> ml_collections.ConfigDict:
    """The full BigGAN(-deep) config for a preset dict `p` (keys as in the PRESETS tables)."""
    c = run_base("biggan")
    c.model = ml_collections.ConfigDict(dict(
        name=family, resolution=p["resolution"], n_classes=p["n_classes"], dim_z=p["dim_z"],
        shared_dim=p["shared_dim"], hier=True, G_ch=p["ch"], D_ch=p["ch"],
        G_depth=p["depth"], D_depth=p["depth"], G_attn=p["attn"], D_attn=p["attn"],
        BN_eps=1e-4, SN_eps=1e-4, num_G_SVs=1, num_D_SVs=1, G_shared=True,
        bn_reduction_group="global",  # BigGAN §3 cross-replica BN: "global" | "device" | k
        # G's output conv width; the first 3 channels are the image (128: the released
        # BigGAN-deep weights' TPU layout, e.g. --config.model.rgb_conv_channels=128)
        rgb_conv_channels=3,
        dtype=p.get("dtype", "float32")))
    c.data = data_config(p)
    c.train = ml_collections.ConfigDict(dict(
        num_steps=p["steps"], batch_size=p["batch"], d_steps=2, grad_accum=1,
        lr_g=p["lr_g"], lr_d=p["lr_d"], b1=0.0, b2=0.999, adam_eps=p.get("adam_eps", 1e-8),
        ortho_beta=1e-4, ortho_exclude="shared", ema_decay=p.get("ema_decay", 0.9999),
        ema_start=p.get("ema_start", 20_000)))
    c.sample = ml_collections.ConfigDict(dict(
        truncation=0.0,  # τ; 0 = untruncated
        truncation_mode="threshold",  # "threshold" (paper) | "tfhub_scaled"
        standing_stats_batches=p.get("standing_batches", 100),
        standing_stats_batch_size=min(p["batch"], 256)))
    run_blocks(c, p, sv_every=p.get("sv_every", 1000))
    # Every SN weight of G and D (BigGAN §4.1 collapse analysis; BigGAN-PyTorch logs each SN
    # layer's sigma_0): all >= 2-D kernels but G's shared class embedding, which has no SN.
    c.log.sv_layers = r"^(?!shared/)"
    return c


def eval_config(p: dict) -> ml_collections.ConfigDict:
    """The `eval` block every family shares (`--mode=eval` and periodic evaluation).

    Weights are local files; a metric whose file is empty is skipped with a log line. Preset keys:
    eval_every (default 0 = off, as on CPU), eval_samples (default 50k, the fid50k protocol; 1k
    on the built-in CPU datasets), metrics.
    """
    cpu_data = p.get("data") in ("digits", "photos")
    return ml_collections.ConfigDict(dict(
        # comma-separated: fid kid is sfid rfid pr swd ms_ssim ppl eqt_int eqt_frac eqr clip_score
        # (ppl: StyleGAN2/3 only; eqt_int, eqt_frac, eqr: StyleGAN3 only; clip_score: a
        # text-conditional G whose sample_fn returns (images, prompts))
        metrics=p.get("metrics", "fid,kid,is,rfid,pr"),
        num_samples=p.get("eval_samples", 1000 if cpu_data else 50_000),  # 50k: fid50k, pr50k3
        # real images: the whole dataset without flips (fid50k_full) capped at num_real (0: no
        # cap); a dataset of unknown size (built-in, TFDS stream): num_real, else num_samples
        num_real=0,
        batch_size=50,  # generated images per sample_fn call (one compile)
        # EQ-T / EQ-R images per batch, one transform each (official metric_main: 4; EQ-R holds
        # 4x upsampled float64 copies of every batch)
        eq_batch_size=4,
        every=p.get("eval_every", 0),  # train steps between evaluations; 0 = off
        truncation=0.0,  # truncation passed to the recipe's sample_fn (0 = none)
        # --mode=eval only: the sample metrics at each of these truncations (e.g. "1.0,0.9,0.7",
        # StyleGAN-T's FID-CLIP-score curve over psi), keys '<metric>/psi_<value>' in
        # metrics_<step>.json; "" = off (config.eval.truncation, plain keys)
        truncation_sweep="",
        inception="",  # FID Inception: pt_inception-2015-12-05-6726825d.pth or .npz
        vgg16="",  # VGG16 for precision/recall (.npz, torch names; convert.vgg16)
        lpips="",  # LPIPS-VGG16 for PPL (.npz, lpips package names; convert.vgg16.load_lpips)
        # rFID's fixed random Inception (torch-named state dict .npz/.pth, as `inception`; write
        # one with convert.inception.save_rfid_weights). "": drawn from rfid_seed (not
        # comparable with published rFID).
        rfid_weights="",
        rfid_seed=0,
        # CLIP score (StyleGAN-T): open_clip state dict (.safetensors/.npz) of clip_model, which is
        # a feature_nets.clip variant, "ViT-g-14" (the protocol's laion2b_s12b_b42k weights) or an
        # open_clip model-config .json
        clip_weights="",
        clip_model="ViT-g-14",
        fid_method="sqrtm",  # "sqrtm" (protocol) | "eigh" (same value for PSD, faster)
    ))


def check_override_keys(config, argv) -> None:
    """Raises ValueError for the first `--config.a.b=...` in argv that names no config field,
    listing the valid keys at that level (ml_collections itself only says AttributeError)."""
    for arg in argv:
        if not arg.startswith("--config."):
            continue
        path = arg[len("--config."):].split("=", 1)[0].split(".")
        node, where = config, "config"
        for key in path:
            keys = list(node.keys()) if hasattr(node, "keys") else []
            if key not in keys:
                raise ValueError(f"--{where}.{key}: unknown config key {key!r}; valid keys of "
                                 f"{where}: {sorted(keys)}")
            node, where = node[key], f"{where}.{key}"


def load_config_file(spec: str):
    """`path.py[:arg]` -> get_config(arg) of that file (what config_flags does, without flags)."""
    from gan_zoo.config_file import load_config_file as load  # noqa: PLC0415

    return load(spec)
