"""The items of benchmarks/vs_official.py: each builds the official module from its constructor
kwargs (seed 0), converts its state dict with gan_zoo.convert, checks both forwards equal and
returns a Bench of two one-call closures. Imported by vs_official.main after the thread setup
(torch, jax and the official repositories are imported here, never by `import gan_zoo`)."""

import copy
import importlib
import pathlib
import sys
import tempfile
import types

import jax
import jax.numpy as jnp
import numpy as np
import torch

from gan_zoo import train
from gan_zoo.convert import biggan as bg_convert
from gan_zoo.convert import inception as inc_convert
from gan_zoo.convert import stylegan2 as sg2_convert
from gan_zoo.convert import stylegan3 as sg3_convert

_vs = sys.modules["vs_official"]  # registered by vs_official._items_module
Bench, check_equal, batch_of = _vs.Bench, _vs.check_equal, _vs.batch_of


# ----------------------------------------------------------------------------------------------
# Official imports.

def _stub_if_missing(name: str, **attrs) -> None:
    """An empty module for an import the official code makes but never uses on these paths."""
    try:
        importlib.import_module(name)
    except ImportError:
        sys.modules[name] = types.SimpleNamespace(**attrs)


def _no_plugin(*args, **kwargs):
    raise RuntimeError("vs_official: the official code tried to compile a CUDA/C++ plugin; "
                       "on CPU it must take the reference (impl='ref') paths")


def setup_official_imports(args) -> None:
    """sys.path for the official trees, stubs for unused imports, and a guard that makes any
    custom-op plugin build an error (on CPU the NVlabs ops fall back to their reference code)."""
    from packaging.version import parse as parse_version  # noqa: PLC0415
    _stub_if_missing("pkg_resources", parse_version=parse_version)  # conv2d_gradfix
    _stub_if_missing("requests")  # dnnlib.util (URL downloads only)
    for path in (args.stylegan3_path, args.biggan_path):
        if path and str(pathlib.Path(path).resolve()) not in sys.path:
            sys.path.append(str(pathlib.Path(path).resolve()))
    if args.stylegan3_path:
        from torch_utils import custom_ops  # noqa: PLC0415
        custom_ops.get_plugin = _no_plugin


def _numpy_sd(module) -> dict:
    return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def _nchw(x):
    return np.asarray(x).transpose(0, 3, 1, 2)


def _randn(seed: int, *shape):
    return np.random.RandomState(seed).randn(*shape).astype(np.float32)


def _blocking(fn):
    """A closure that runs fn() and waits for every jax output."""
    return lambda: jax.block_until_ready(fn())


# ----------------------------------------------------------------------------------------------
# StyleGAN2 (official train.py --cfg=stylegan2 --fp32=1: config F layout, 8 mapping layers).

def sg2_kwargs(args):
    """(G kwargs, D kwargs) as train.py builds them, float32 (num_fp16_res 0, no clamp)."""
    common = dict(c_dim=0, img_resolution=args.res, img_channels=3, channel_base=32768,
                  channel_max=args.cmax, num_fp16_res=0, conv_clamp=None)
    g = dict(common, z_dim=512, w_dim=512, architecture="skip",
             fused_modconv_default="inference_only", mapping_kwargs=dict(num_layers=8))
    d = dict(common, architecture="resnet", block_kwargs=dict(freeze_layers=0),
             mapping_kwargs={}, epilogue_kwargs=dict(mbstd_group_size=4))
    return g, d


def _sg2_nets(args, item: str, training: bool):
    """Official G and D (seed 0) and their converted gan_zoo twins, G forward checked."""
    from training import networks_stylegan2  # noqa: PLC0415
    g_kw, d_kw = sg2_kwargs(args)
    torch.manual_seed(0)
    G = networks_stylegan2.Generator(**g_kw).train(training).requires_grad_(False)
    D = networks_stylegan2.Discriminator(**d_kw).train(training).requires_grad_(False)
    Gz, Dz = sg2_convert.generator_from_kwargs(g_kw), sg2_convert.discriminator_from_kwargs(d_kw)
    g_vars = sg2_convert.convert_state_dict(_numpy_sd(G), Gz)
    d_vars = sg2_convert.convert_state_dict(_numpy_sd(D), Dz)
    n = batch_of(args, item)
    z = _randn(1, n, G.z_dim)
    g_fwd = jax.jit(lambda v, z: Gz.apply(v, z, None, noise_mode="const")[0])
    with torch.no_grad():
        img = G(torch.from_numpy(z), torch.zeros([n, 0]), noise_mode="const")
    check_equal(item, "G(z) images", _nchw(g_fwd(g_vars, z)), img.numpy())
    return (G, D, g_vars, d_vars), (Gz, Dz), (g_fwd, z)


def build_sg2_g(args, item: str):
    (G, _, g_vars, _), (Gz, _), (g_fwd, z) = _sg2_nets(args, item, training=False)
    zt, ct = torch.from_numpy(z), torch.zeros([z.shape[0], 0])

    def theirs():
        with torch.no_grad():
            G(zt, ct, noise_mode="const")

    return Bench(_blocking(lambda: g_fwd(g_vars, z)), theirs,
                 f"batch {z.shape[0]}, {args.res}^2, channel_max {args.cmax}, noise const, "
                 f"official fused (eval), gan_zoo fused_modconv_default="
                 f"{getattr(Gz, 'fused_modconv_default', '?')}")


def _load_state(state, recipe, g_vars, d_vars):
    """The recipe's fresh state with the converted weights (and fresh Adam moments)."""
    g, d = dict(g_vars), dict(d_vars)
    params = {"g": g.pop("params"), "d": d.pop("params")}
    for k in params:
        want, got = jax.tree.structure(state.params[k]), jax.tree.structure(params[k])
        if want != got:
            raise ValueError(f"converted {k} params do not fit the recipe's {k}: {got} vs {want}")
    cols = {k: {**state.collections[k], **v} for k, v in (("g", g), ("d", d))}
    return state.replace(params=params,
                         opt_state={k: recipe.optimizers[k].init(params[k]) for k in params},
                         ema_params=jax.tree.map(jnp.copy, params["g"]), collections=cols)


def _ours_step(recipe, state, batch, config):
    """A closure running gan_zoo's jitted train step (as the trainer compiles it for `config`)
    on its own (donated) state."""
    one = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    step = train.make_train_step(recipe, 1, one, one,
                                 config.train.get("xla_cpu_convs", train.step.CPU_CONVS[0]))
    box = {"state": state}

    def run():
        box["state"], metrics = step(box["state"], batch)
        jax.block_until_ready(metrics)

    return run


def _sg2_config(args, item: str, r1_gamma: float):
    from configs import stylegan2 as sg2_configs  # noqa: PLC0415
    config = sg2_configs.get_config("ffhq1024")
    config.model.resolution, config.model.n_classes = args.res, 0
    t = config.train
    t.batch_size, t.r1_gamma, t.d_reg_interval = batch_of(args, item), r1_gamma, 0
    t.pl_weight, t.style_mixing_prob, t.blur_sigma = 0.0, 0.9, 0.0
    t.ema_kimg, t.ema_rampup = t.batch_size * 10 / 32, 0.0  # train.py: batch * 10 / 32
    return config


def _official_sg2_step(G, D, r1_gamma: float, lr: float, ema_kimg: float, reals):
    """training_loop.py's iteration at 1 GPU: phases Gboth, Dboth (G_reg_interval and
    D_reg_interval None; pl_weight 0 turns Gboth into Gmain, r1_gamma 0 Dboth into Dmain),
    each with zero_grad, accumulate_gradients, nan_to_num of the flat grads and Adam; then the
    G_ema lerp (beta = 0.5 ** (batch / ema_nimg)) and buffer copy."""
    from training.loss import StyleGAN2Loss  # noqa: PLC0415
    n = reals.shape[0]
    loss = StyleGAN2Loss("cpu", G, D, r1_gamma=r1_gamma, style_mixing_prob=0.9, pl_weight=0)
    phases = [(name, m, torch.optim.Adam(m.parameters(), lr=lr, betas=(0.0, 0.99), eps=1e-8))
              for name, m in (("Gboth", G), ("Dboth", D))]
    G_ema = copy.deepcopy(G).eval()
    beta = 0.5 ** (n / (ema_kimg * 1000))
    c = torch.zeros([n, 0])

    def run():
        for name, module, opt in phases:
            opt.zero_grad(set_to_none=True)
            module.requires_grad_(True)
            loss.accumulate_gradients(name, reals, c, torch.randn([n, G.z_dim]), c, 1, 0)
            module.requires_grad_(False)
            params = [p for p in module.parameters() if p.grad is not None]
            flat = torch.nan_to_num(torch.cat([p.grad.flatten() for p in params]), nan=0,
                                    posinf=1e5, neginf=-1e5)
            for p, g in zip(params, flat.split([p.numel() for p in params])):
                p.grad = g.reshape(p.shape)
            opt.step()
        with torch.no_grad():
            for p_ema, p in zip(G_ema.parameters(), G.parameters()):
                p_ema.copy_(p.lerp(p_ema, beta))
            for b_ema, b in zip(G_ema.buffers(), G.buffers()):
                b_ema.copy_(b)

    return run


def build_sg2_train(args, item: str):
    from gan_zoo.recipes import stylegan as sg_recipe  # noqa: PLC0415
    r1_gamma = 1.0 if item == "sg2_train_r1" else 0.0
    (G, D, g_vars, d_vars), (Gz, Dz), _ = _sg2_nets(args, item, training=True)
    n = batch_of(args, item)
    reals = np.tanh(_randn(2, n, 3, args.res, args.res))  # NCHW in (-1, 1)
    with torch.no_grad():
        logits = D(torch.from_numpy(reals), torch.zeros([n, 0])).numpy()
    ours_logits = Dz.apply(d_vars, jnp.asarray(reals.transpose(0, 2, 3, 1)), None)[0]
    check_equal(item, "D(x) logits", np.reshape(ours_logits, -1), logits.reshape(-1))
    config = _sg2_config(args, item, r1_gamma)
    recipe = sg_recipe.make_recipe(config, networks=(Gz, Dz))
    state = _load_state(recipe.init_state(jax.random.PRNGKey(0), config), recipe, g_vars, d_vars)
    batch = {"image": jnp.asarray(reals.transpose(0, 2, 3, 1))[None, None],
             "label": jnp.zeros((1, 1, n), jnp.int32)}
    theirs = _official_sg2_step(G, D, r1_gamma, config.train.lr_g, config.train.ema_kimg,
                                torch.from_numpy(reals))
    return Bench(_ours_step(recipe, state, batch, config), theirs,
                 f"batch {n}, {args.res}^2, channel_max {args.cmax}, style mixing 0.9, "
                 + (f"R1 gamma {r1_gamma:g} every step" if r1_gamma else "no R1")
                 + f", Adam lr {config.train.lr_g:g}")


# ----------------------------------------------------------------------------------------------
# StyleGAN3-T (train.py --cfg=stylegan3-t --fp32=1: 2 mapping layers, magnitude EMA beta).

def sg3_kwargs(args, batch: int) -> dict:
    return dict(z_dim=512, w_dim=512, c_dim=0, img_resolution=args.res, img_channels=3,
                channel_base=32768, channel_max=args.cmax, num_fp16_res=0, conv_clamp=None,
                magnitude_ema_beta=0.5 ** (batch / (20 * 1e3)), mapping_kwargs=dict(num_layers=2))


def build_sg3_g(args, item: str):
    from training import networks_stylegan3  # noqa: PLC0415
    n = batch_of(args, item)
    kw = sg3_kwargs(args, n)
    torch.manual_seed(0)
    G = networks_stylegan3.Generator(**kw).eval().requires_grad_(False)
    Gz = sg3_convert.generator_from_kwargs(kw)
    g_vars = sg3_convert.convert_state_dict(_numpy_sd(G), Gz)
    z = _randn(1, n, G.z_dim)
    zt, ct = torch.from_numpy(z), torch.zeros([n, 0])
    g_fwd = jax.jit(lambda v, z: Gz.apply(v, z, None)[0])
    with torch.no_grad():
        img = G(zt, ct)
    check_equal(item, "G(z) images", _nchw(g_fwd(g_vars, z)), img.numpy())

    def theirs():
        with torch.no_grad():
            G(zt, ct)

    return Bench(_blocking(lambda: g_fwd(g_vars, z)), theirs,
                 f"batch {n}, {args.res}^2, channel_max {args.cmax}")


# ----------------------------------------------------------------------------------------------
# BigGAN-deep (BigGAN-PyTorch launch_BigGAN_deep.sh settings at 64 px; our recipe's schedule).

def biggan_kwargs(args, t) -> tuple:
    """(G kwargs, D kwargs): the deep launch script's arch flags, train.py's ch default 64,
    and the optimiser settings of our config `t` (config.train)."""
    opt = dict(adam_eps=t.adam_eps, SN_eps=1e-6, skip_init=False, no_optim=False)
    g = dict(opt, G_ch=args.biggan_ch, G_depth=2, dim_z=128, bottom_width=4,
             resolution=args.res, G_attn="64", n_classes=1000, G_shared=True, shared_dim=128,
             hier=True, BN_eps=1e-5, G_lr=t.lr_g, G_B1=t.b1, G_B2=t.b2, G_init="ortho")
    d = dict(opt, D_ch=args.biggan_ch, D_depth=2, D_wide=True, resolution=args.res,
             D_attn="64", n_classes=1000, D_lr=t.lr_d, D_B1=t.b1, D_B2=t.b2, D_init="ortho")
    return g, d


def _biggan_config(args, item: str):
    from configs import biggan_deep as bgd_configs  # noqa: PLC0415
    config = bgd_configs.get_config("imagenet128")
    config.model.resolution, config.model.n_classes, config.model.dim_z = args.res, 1000, 128
    config.train.batch_size = batch_of(args, item)
    return config


def _biggan_check(item, G, D, Gz, Dz, g_vars, d_vars, n: int):
    """Eval-mode G(z, y) and D(x, y) equal on both sides (stored BN stats, SN u not written)."""
    z, y = _randn(3, n, G.dim_z), np.arange(n) % 1000
    x = np.tanh(_randn(4, n, 3, G.resolution, G.resolution))
    G.eval(), D.eval()
    with torch.no_grad():
        yt = torch.from_numpy(y)
        img = G(torch.from_numpy(z), G.shared(yt)).numpy()
        logits = D(torch.from_numpy(x), yt).numpy()
    G.train(), D.train()
    ours_img = Gz.apply(g_vars, z, jnp.asarray(y, jnp.int32), train=False)[0]
    check_equal(item, "G(z, y) images (eval)", _nchw(ours_img), img)
    ours_logits = Dz.apply(d_vars, x.transpose(0, 2, 3, 1), jnp.asarray(y, jnp.int32),
                           train=False)[0]
    check_equal(item, "D(x, y) logits (eval)", np.reshape(ours_logits, -1), logits.reshape(-1))


def _official_biggan_step(G_kw, G, D, t, n: int, reals):
    """train_fns.GAN_training_function with the G_D wrapper, utils.ema and prepare_z_y."""
    import BigGANdeep  # noqa: PLC0415
    import train_fns  # noqa: PLC0415
    import utils  # noqa: PLC0415
    G_ema = BigGANdeep.Generator(**{**G_kw, "skip_init": True, "no_optim": True})
    ema = utils.ema(G, G_ema, t.ema_decay, t.ema_start)
    z_, y_ = utils.prepare_z_y(n, G.dim_z, 1000, device="cpu", fp16=False)
    cfg = dict(batch_size=n, toggle_grads=True, num_D_steps=t.d_steps, num_D_accumulations=1,
               split_D=False, D_ortho=0.0, num_G_accumulations=1, G_ortho=t.ortho_beta, ema=True)
    step = train_fns.GAN_training_function(G, D, BigGANdeep.G_D(G, D), z_, y_, ema,
                                           {"itr": 0}, cfg)
    x, y = torch.from_numpy(reals), torch.arange(reals.shape[0]) % 1000
    return lambda: step(x, y)


def build_biggan_deep_train(args, item: str):
    import BigGANdeep  # noqa: PLC0415

    from gan_zoo.recipes import biggan as bg_recipe  # noqa: PLC0415
    config = _biggan_config(args, item)
    t, n = config.train, config.train.batch_size
    g_kw, d_kw = biggan_kwargs(args, t)
    torch.manual_seed(0)
    G, D = BigGANdeep.Generator(**g_kw), BigGANdeep.Discriminator(**d_kw)
    conv = {k: v for k, v in g_kw.items() if k not in ("skip_init", "no_optim")}
    Gz = bg_convert.model_from_torch_kwargs("BigGANdeep.Generator", conv)
    Dz = bg_convert.model_from_torch_kwargs("BigGANdeep.Discriminator", d_kw)
    g_vars = bg_convert.torch_to_flax(_numpy_sd(G), Gz)
    d_vars = bg_convert.torch_to_flax(_numpy_sd(D), Dz)
    _biggan_check(item, G, D, Gz, Dz, g_vars, d_vars, n)
    recipe = bg_recipe.make_recipe(config, networks=(Gz, Dz))
    state = _load_state(recipe.init_state(jax.random.PRNGKey(0), config), recipe, g_vars, d_vars)
    reals = np.tanh(_randn(5, t.d_steps * n, 3, args.res, args.res))
    nhwc = reals.transpose(0, 2, 3, 1).reshape(t.d_steps, 1, n, args.res, args.res, 3)
    labels = (np.arange(t.d_steps * n) % 1000).reshape(t.d_steps, 1, n)
    batch = {"image": jnp.asarray(nhwc), "label": jnp.asarray(labels, jnp.int32)}
    return Bench(_ours_step(recipe, state, batch, config),
                 _official_biggan_step(g_kw, G, D, t, n, reals),
                 f"batch {n}, {args.res}^2, ch {args.biggan_ch}, {t.d_steps} D steps, "
                 f"ortho {t.ortho_beta:g}, EMA")


# ----------------------------------------------------------------------------------------------
# FID Inception-v3 (torch-fidelity's FeatureExtractorInceptionV3, same weights).

def build_fid_inception(args, item: str):
    from torch_fidelity import feature_extractor_inceptionv3 as fidelity  # noqa: PLC0415

    from gan_zoo.metrics import features  # noqa: PLC0415
    sd = inc_convert.read_state_dict(args.inception_weights)
    with tempfile.TemporaryDirectory() as tmp:  # torch-fidelity reads a .pth; no download
        path = pathlib.Path(tmp) / "inception.pth"
        torch.save({k: torch.from_numpy(np.asarray(v)) for k, v in sd.items()}, path)
        theirs_net = fidelity.FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))
    ours_net = features.InceptionFeatures(inc_convert.convert_state_dict(sd), names=("pool3",))
    n = batch_of(args, item)
    images = np.random.RandomState(6).randint(0, 256, (n, args.res, args.res, 3), np.uint8)
    images_t = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        pool3 = theirs_net(images_t)[0].numpy()
    check_equal(item, "pool3 features", ours_net(images)["pool3"], pool3)

    def theirs():
        with torch.no_grad():
            theirs_net(images_t)

    return Bench(lambda: ours_net(images), theirs, f"{n} images {args.res}^2 -> 299^2")


BUILDERS = {"sg2_g": build_sg2_g, "sg2_train": build_sg2_train, "sg2_train_r1": build_sg2_train,
            "sg3_g": build_sg3_g, "biggan_deep_train": build_biggan_deep_train,
            "fid_inception": build_fid_inception}
