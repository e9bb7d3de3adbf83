"""gan_zoo.convert.official / torch_pickle: the official files of ../shared/official are read
without torch and without running anything, every tensor matches the digests the official code
recorded, and the loaded networks reproduce the official outputs (`NAME.expected.npz`);
malicious pickles are refused before anything runs."""

import io
import json
import os
import pathlib
import pickle
import struct
import subprocess
import sys
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_zoo.convert import official, torch_pickle
from gan_zoo.convert.official import UnsafePickleError, load_official

REPO = pathlib.Path(__file__).resolve().parents[2]
NVLABS = ("sg2ada_cifar_cond32", "sg3t_uncond32")
# Golden tolerances (../shared/official/README.md "Tolerances"): a float32 port agrees to ~1e-5
# rel-L2; the reference's own reduction-order noise is up to 4.4e-6 absolute on images of |7.7|.
REL_L2 = 1e-5
MAX_ABS_REL = 2e-6  # max |diff| / max(1, max |ref|)


@pytest.fixture(scope="module")
def odir():
    d = pathlib.Path(os.environ.get("GAN_ZOO_OFFICIAL", REPO.parent / "shared" / "official"))
    if not d.is_dir():
        pytest.fail(f"official files folder {d} not found (set GAN_ZOO_OFFICIAL)")
    return d


def assert_matches(got, want, name):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{name}: shape {got.shape} vs {want.shape}"
    rel = np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30)
    err = np.abs(got - want).max() / max(1.0, np.abs(want).max())
    assert rel <= REL_L2 and err <= MAX_ABS_REL, f"{name}: rel-L2 {rel:.2e}, max abs {err:.2e}"


# ----------------------------------------------------------------------------------------------
# Malicious pickles: refused, naming the callable, and nothing runs.

class _System:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Eval:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (eval, (f"open({self.marker!r}, 'w').close()",))


def _torch_zip(path, data_pkl: bytes):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("G/data.pkl", data_pkl)
        zf.writestr("G/byteorder", "little")
        zf.writestr("G/version", "3\n")


def _legacy(obj_pickle: bytes) -> bytes:
    head = b"".join(pickle.dumps(x, protocol=2) for x in (
        torch_pickle.LEGACY_MAGIC, torch_pickle.LEGACY_PROTOCOL, {"little_endian": True}))
    return head + obj_pickle + pickle.dumps([], protocol=2)


@pytest.mark.parametrize("payload,callable_name", [(_System, r"(posix|nt|os)\.system'"),
                                                   (_Eval, r"builtin_?_?s?\.eval'")])
@pytest.mark.parametrize("container", ["pkl2", "pkl4", "nested", "zip", "legacy", "blob"])
def test_malicious_pickle_refused(tmp_path, payload, callable_name, container):
    marker = tmp_path / "pwned"
    evil = payload(marker)
    f = tmp_path / "evil.bin"
    proto = 2 if container in ("pkl2", "zip", "legacy") else 4
    if container == "nested":  # deep inside a plausible network pickle
        evil = {"G_ema": {"state": [1, 2, {"x": evil}]}, "training_set_kwargs": {}}
    body = pickle.dumps(evil, protocol=proto)
    if container == "zip":
        _torch_zip(f, body)
    elif container == "legacy":
        f.write_bytes(_legacy(body))
    elif container == "blob":  # inside a torch.storage._load_from_bytes blob of a network pickle
        f.write_bytes(_blob_pickle(_legacy(body)))
    else:
        f.write_bytes(body)
    reader = official.read_torch_checkpoint if container in ("zip", "legacy") \
        else official.read_pickle
    with pytest.raises(UnsafePickleError, match=callable_name):
        reader(f)
    assert not marker.exists()


def _blob_pickle(blob: bytes) -> bytes:
    """Opcodes of `torch.storage._load_from_bytes(blob)` (how NVlabs pickles hold storages)."""
    return (b"\x80\x04ctorch.storage\n_load_from_bytes\nB" + struct.pack("<I", len(blob)) + blob
            + b"\x85R.")


def test_unknown_persistent_record_and_out_of_bounds_tensor_refused(tmp_path):
    class ModuleRecord(pickle.Pickler):  # the legacy format's ('module', cls, src) records
        def persistent_id(self, obj):
            return ("module", "Net", "import os") if obj == "net" else None

    buf = io.BytesIO()
    ModuleRecord(buf, protocol=2).dump({"net": "net"})
    f = tmp_path / "m.pkl"
    f.write_bytes(buf.getvalue())
    with pytest.raises(UnsafePickleError, match="'module'"):
        official.read_pickle(f)
    f.write_bytes(_legacy(buf.getvalue()))
    with pytest.raises(UnsafePickleError, match="'module'"):
        official.read_torch_checkpoint(f)
    # A legacy ('module', <class>, file, source) record of an allowed torch.nn class (how torch<1.6
    # pickled BigGAN's config activations): the class becomes an inert stub, the source is unused.
    relu = (b"\x80\x02(X\x06\x00\x00\x00modulectorch.nn.modules.activation\nReLU\n"
            b"X\x04\x00\x00\x00fileX\x0f\x00\x00\x00import os #evilt"
            b"Q)\x81}X\x07\x00\x00\x00inplace\x88sb.")
    f.write_bytes(_legacy(relu))
    stub = torch_pickle.load(f)
    assert stub.class_name == "torch.nn.modules.activation.ReLU"
    assert stub.state == {"inplace": True}
    f.write_bytes(_legacy(relu.replace(b"torch.nn.modules.activation\nReLU", b"os\nsystem")))
    with pytest.raises(UnsafePickleError, match="os.system"):
        torch_pickle.load(f)
    storage = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="addresses element"):
        torch_pickle._rebuild_tensor(storage, 2, (2, 2), (2, 1), False, None)
    view = torch_pickle._rebuild_tensor(np.arange(6, dtype=np.float32), 1, (2, 2), (1, 2))
    np.testing.assert_array_equal(view, [[1, 3], [2, 4]])


def test_reading_imports_nothing(odir):
    code = ("import sys; from gan_zoo.convert import official as o; "
            f"o.read_pickle({str(odir / 'sg3t_uncond32.pkl')!r}); "
            f"o.read_torch_checkpoint({str(odir / 'biggan_32' / 'state_dict.pth')!r}); "
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'dnnlib', 'torch_utils', 'training', 'BigGAN', 'layers')]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


# ----------------------------------------------------------------------------------------------
# Readers: every tensor equals the official digests.

@pytest.mark.parametrize("name", NVLABS)
def test_nvlabs_tensors_match_official_digests(odir, name):
    meta = json.loads((odir / f"{name}.json").read_text())
    data = official.read_pickle(odir / f"{name}.pkl")
    assert [k for k, _ in meta["top_level"]] == list(data)
    for key, net in meta["networks"].items():
        rec = data[key]
        assert rec.class_name == net["persistent_class"]
        assert rec.init_kwargs == net["init_kwargs"]
        assert "class" in rec.module_src and isinstance(rec.module_src, str)
        digest = net["state_dict_digest"]
        assert list(rec.state_dict) == list(digest), key  # names and order of state_dict()
        for t, d in digest.items():
            a = np.asarray(rec.state_dict[t], np.float64)
            assert list(a.shape) == d["shape"], t
            np.testing.assert_allclose([a.sum(), np.sqrt((a * a).sum())], [d["sum"], d["l2"]],
                                       rtol=1e-6, atol=1e-6, err_msg=f"{key}.{t}")
    assert data["training_set_kwargs"] == meta["training_set_kwargs"]


def test_biggan_checkpoints_zip_and_legacy(odir):
    meta = json.loads((odir / "biggan_32.json").read_text())
    d = odir / "biggan_32"
    for fname, shapes in meta["state_dict_shapes"].items():
        sd = official.read_torch_checkpoint(d / f"{fname}.pth")
        assert {k: list(v.shape) for k, v in sd.items()} == shapes, fname
    zipped = official.read_torch_checkpoint(d / "G_ema.pth")
    legacy = official.read_torch_checkpoint(d / "G_ema.legacy.pth")
    assert list(zipped) == list(legacy)
    for k in zipped:
        np.testing.assert_array_equal(legacy[k], zipped[k], err_msg=k)
    state = official.read_torch_checkpoint(d / "state_dict.pth")
    assert state["itr"] == meta["training_state"].get("itr", state["itr"])
    assert state["config"]["G_activation"].class_name == "torch.nn.modules.activation.ReLU"
    optim = official.read_torch_checkpoint(d / "G_optim.pth")
    assert set(optim) == {"state", "param_groups"} and len(optim["state"]) > 0


# ----------------------------------------------------------------------------------------------
# Exactness: outputs of the loaded networks equal the official outputs.

def _nhwc(x):
    return jnp.asarray(np.asarray(x).transpose(0, 2, 3, 1))


def _nchw(x):
    return np.asarray(x).transpose(0, 3, 1, 2)


def _jit_d(D, **kw):
    return jax.jit(lambda v, x, c: D.apply(v, x, c, **kw)[0])


@pytest.mark.slow
@pytest.mark.parametrize("name", NVLABS)
def test_nvlabs_outputs_match_official(odir, name):
    """ws (psi 1, 0.7, 0.7 with cutoff), G_ema and G images (const noise; 'none' for StyleGAN2),
    D logits of the two-image batch. One compile per function: every call reuses its shapes."""
    meta = json.loads((odir / f"{name}.json").read_text())
    exp = np.load(odir / f"{name}.expected.npz")
    nets = load_official(odir / f"{name}.pkl")
    assert nets.family == ("stylegan3" if name.startswith("sg3") else "stylegan2")
    G = nets.G
    z = jnp.asarray(exp["z"])
    c = jnp.asarray(exp["c"]) if exp["c"].size else None
    mapping = jax.jit(lambda v, z, c, psi, cut: G.apply(v, z, c, psi=psi, cutoff=cut,
                                                       method="map"), static_argnums=(3, 4))
    synth = jax.jit(lambda v, ws, mode: G.apply(v, ws, noise_mode=mode, method="synthesize")[0],
                    static_argnums=2)
    cut = meta["truncation_cutoff_used"]
    for key, psi, cutoff in (("psi1", 1.0, None), ("psi07", 0.7, None),
                             ("psi07_cutoff", 0.7, cut)):
        ws = mapping(nets.g_ema_variables, z, c, psi, cutoff)
        assert_matches(ws, exp[f"ws_{key}"], f"{name} ws_{key}")
        assert_matches(_nchw(synth(nets.g_ema_variables, ws, "const")), exp[f"img_{key}"],
                       f"{name} img_{key}")
    if "img_psi1_noise_none" in exp:
        assert_matches(_nchw(synth(nets.g_ema_variables, jnp.asarray(exp["ws_psi1"]), "none")),
                       exp["img_psi1_noise_none"], f"{name} img_psi1_noise_none")
    g_ws = mapping(nets.g_variables, z, c, 1.0, None)
    assert_matches(_nchw(synth(nets.g_variables, g_ws, "const")), exp["G_img_psi1"],
                   f"{name} G_img_psi1")
    assert not np.allclose(exp["G_img_psi1"], exp["img_psi1"])  # G and G_ema really differ
    d_c = jnp.asarray(exp["d_c"]) if exp["d_c"].size else None
    logits = _jit_d(nets.D)(nets.d_variables, _nhwc(exp["d_img"]), d_c)
    assert_matches(np.asarray(logits).reshape(-1, 1), exp["d_logits"], f"{name} d_logits")


def test_nvlabs_extra_and_kwargs(odir):
    nets = load_official(odir / "sg2ada_cifar_cond32.pkl")
    assert nets.extra["augment_pipe"]["p"] == pytest.approx(0.1234)
    assert nets.extra["c_dim"] == 10 and nets.extra["resolution"] == 32
    assert nets.init_kwargs["G"]["synthesis_kwargs"]["conv_clamp"] == 256
    assert nets.G.conv_clamp == 256 and nets.G.mapping_layers == 2


def _tree_equal(a, b):
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    return ta == tb and all(np.array_equal(x, y) for x, y in zip(la, lb))


@pytest.fixture(scope="module")
def biggan_nets(odir):
    return load_official(odir / "biggan_32")


@pytest.mark.slow
def test_biggan_outputs_match_official(odir, biggan_nets):
    exp = np.load(odir / "biggan_32.expected.npz")
    nets = biggan_nets
    assert nets.family == "biggan"
    z, y = jnp.asarray(exp["z"]), jnp.asarray(exp["y"])
    g = jax.jit(lambda v, z, y: nets.G.apply(v, z, y, train=False))
    img, aux = g(nets.g_ema_variables, z, y)
    assert_matches(aux["y"], exp["shared_y"], "shared_y")
    assert_matches(_nchw(img), exp["img"], "img")
    assert_matches(_nchw(g(nets.g_variables, z, y)[0]), exp["G_img"], "G_img")
    logits = _jit_d(nets.D, train=False)(nets.d_variables, _nhwc(exp["d_img"]),
                                         jnp.asarray(exp["d_y"]))
    assert_matches(np.asarray(logits).reshape(-1, 1), exp["d_logits"], "d_logits")


def test_biggan_legacy_file_equals_zip(odir, biggan_nets):
    """The pre-1.6 copy of G_ema loads to the same variables (so the same images); its siblings
    (G.legacy.pth, D.legacy.pth) are absent, so only G_ema is set."""
    legacy = load_official(odir / "biggan_32" / "G_ema.legacy.pth")
    assert legacy.family == "biggan" and legacy.G == biggan_nets.G
    assert legacy.g_variables is None and legacy.D is None
    assert _tree_equal(legacy.g_ema_variables, biggan_nets.g_ema_variables)


def test_biggan_without_config(odir, tmp_path, biggan_nets):
    for f in ("G_ema.pth", "D.pth"):
        (tmp_path / f).write_bytes((odir / "biggan_32" / f).read_bytes())
    with pytest.raises(ValueError, match="biggan_kwargs"):
        load_official(tmp_path)
    meta = json.loads((odir / "biggan_32.json").read_text())
    kw = {k: v for k, v in meta["full_config"].items() if not k.endswith("_activation")}
    nets = load_official(tmp_path / "G_ema.pth", biggan_kwargs=kw)
    assert nets.G == biggan_nets.G and nets.D == biggan_nets.D
    assert _tree_equal(nets.g_ema_variables, biggan_nets.g_ema_variables)
    assert nets.g_variables is None and nets.d_variables is not None


def test_unsupported_family_is_named(tmp_path):
    rec = {"G_ema": 3, "training_set_kwargs": {}}
    f = tmp_path / "x.pkl"
    f.write_bytes(pickle.dumps(rec, protocol=4))
    with pytest.raises(ValueError, match="unsupported network family"):
        load_official(f)
    f.write_bytes(pickle.dumps([1, 2], protocol=4))
    with pytest.raises(ValueError, match="not an NVlabs network pickle"):
        load_official(f)


def _record(class_name, kwargs, src="class SynthesisBlock: fused_modconv_default"):
    return torch_pickle.PersistentObject(class_name, (), kwargs, {}, {}, {}, src, 6)


def test_stylegan_kwargs_official_defaults_and_checks():
    """stylegan2-ada-pytorch defaults (conv_clamp None, w_avg_beta 0.995) where its kwargs omit
    them; the stylegan3 repo's defaults are gan_zoo's; TF-converted 'lrelu' activations dropped,
    other activations and non-default D label-mapping widths refused; fp16 dropped."""
    sg2ada = _record("Generator", {"z_dim": 8, "w_dim": 8, "c_dim": 0, "img_resolution": 16,
                                   "img_channels": 3, "mapping_kwargs": {"activation": "lrelu"},
                                   "synthesis_kwargs": {"num_fp16_res": 4, "activation": "lrelu",
                                                        "channel_base": 64}})
    kw = official._stylegan_kwargs(sg2ada, "G", "f.pkl")
    assert kw["conv_clamp"] is None and kw["mapping_kwargs"] == {"w_avg_beta": 0.995}
    assert kw["channel_base"] == 64 and "num_fp16_res" not in kw and "activation" not in kw
    d_ada = _record("Discriminator", {"c_dim": 0, "img_resolution": 16, "img_channels": 3},
                    src="class SynthesisBlock: pass")
    assert official._stylegan_kwargs(d_ada, "D", "f.pkl")["conv_clamp"] is None
    d_sg3 = _record("Discriminator", {"c_dim": 0, "img_resolution": 16, "img_channels": 3})
    assert "conv_clamp" not in official._stylegan_kwargs(d_sg3, "D", "f.pkl")
    bad = _record("Generator", {**sg2ada.init_kwargs, "synthesis_kwargs": {"activation": "relu"}})
    with pytest.raises(ValueError, match="f.pkl G: activation='relu'"):
        official._stylegan_kwargs(bad, "G", "f.pkl")
    d_bad = _record("Discriminator", {"c_dim": 4, "img_resolution": 16, "img_channels": 3,
                                      "cmap_dim": 32, "mapping_kwargs": {"embed_features": 8}})
    with pytest.raises(ValueError, match="embed_features=8"):
        official._stylegan_kwargs(d_bad, "D", "f.pkl")


def test_family_detection_names_unsupported():
    syn = lambda: _record("SynthesisNetwork", {})  # noqa: E731
    g = _record("Generator", {"z_dim": 8, "mapping_kwargs": {"rand_embedding": False}})
    g.modules = {"synthesis": syn(), "mapping": _record("MappingNetwork", {})}
    assert official._nvlabs_family(g, "xl.pkl") == "stylegan_xl"  # tests/convert/stylegan_xl_test
    for child, family in (("input", "stylegan3"), ("b4", "stylegan2")):
        g = _record("Generator", {"z_dim": 8})
        g.modules = {"synthesis": syn()}
        g.modules["synthesis"].modules = {child: _record("X", {})}
        assert official._nvlabs_family(g, "f.pkl") == family
    g.modules["synthesis"].modules = {"layers": _record("X", {})}
    with pytest.raises(ValueError, match="unsupported generator"):
        official._nvlabs_family(g, "f.pkl")


def test_sg3_layer_attributes_read_from_pickle_match_gan_zoo_geometry(odir):
    """The pickle's per-layer attributes (numpy arrays / scalars, rebuilt by the restricted
    numpy reconstruction) equal the geometry gan_zoo derives from the kwargs."""
    from gan_zoo.convert import stylegan3 as sg3c

    rec = official.read_pickle(odir / "sg3t_uncond32.pkl")["G_ema"]
    G = sg3c.generator_from_kwargs(official._stylegan_kwargs(rec, "G", "sg3t"))
    geometry = sg3c.layers_geometry(G)
    layers = {k: v for k, v in rec.modules["synthesis"].modules.items() if k != "input"}
    assert list(layers) == list(geometry)
    for name, want in geometry.items():
        attrs = layers[name].attrs
        for key, value in want.items():
            got = attrs[key]
            if key in ("in_size", "out_size"):  # official: [W, H] arrays
                assert isinstance(got, np.ndarray) and list(got) == [value, value], name
            else:
                assert np.all(np.asarray(got) == np.asarray(value)), (name, key, got, value)
