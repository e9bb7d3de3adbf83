"""FID Inception-v3: golden (public and by-reference weights), loader errors, rFID init."""
import io
import json
import shutil

import jax
import numpy as np
import pytest

from gan_zoo.convert import inception
from gan_zoo.feature_nets import inception_v3
from gan_zoo.tools import golden as golden_tool

CASE = "feat_inception_fid"


def test_golden_feat_inception_fid(golden):
    out = io.StringIO()
    passed, failed = golden_tool.run([golden / CASE], out=out)
    assert (passed, failed) == (1, 0), out.getvalue()


def test_golden_params_by_reference(golden, tmp_path):
    """A held-out-style case that stores no weights finds feat_inception_fid.npz beside it."""
    meta = json.loads((golden / f"{CASE}.json").read_text())
    meta["params_by_reference"] = f"{CASE}.npz"
    with np.load(golden / f"{CASE}.npz") as d:
        keep = {k: d[k] for k in d.files if k.startswith(("input/img_s64", "output/s64_"))}
    (tmp_path / "heldout.json").write_text(json.dumps(meta))
    np.savez(tmp_path / "heldout.npz", **keep)
    shutil.copy(golden / f"{CASE}.npz", tmp_path / f"{CASE}.npz")
    out = io.StringIO()
    passed, failed = golden_tool.run([tmp_path / "heldout"], out=out)
    assert (passed, failed) == (1, 0), out.getvalue()


def test_tf1_resize_identity_and_taps():
    x = np.random.default_rng(0).uniform(0, 255, (1, 299, 299, 3)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(inception_v3.tf1_resize_bilinear(x)), x)
    lo, hi, frac = inception_v3._tf1_axis(64, 299)
    assert lo[0] == 0 and frac[0] == 0 and hi[-1] == 63 and lo[-1] == 63  # edge clamp


def test_loader_rejects_missing_and_unexpected_names(golden, tmp_path):
    sd = inception.read_state_dict(golden / f"{CASE}.npz")
    assert "fc.weight" in sd and "Mixed_7c.branch_pool.bn.running_var" in sd
    bad = dict(sd)
    del bad["Mixed_6d.branch1x1.conv.weight"]
    bad["extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="1 missing.*Mixed_6d.*1 unexpected.*extra.weight"):
        inception.convert_state_dict(bad)
    bad = dict(sd, **{"fc.bias": np.zeros(7, np.float32)})
    with pytest.raises(ValueError, match="fc.bias has shape"):
        inception.convert_state_dict(bad)
    with pytest.raises(FileNotFoundError, match="pt_inception-2015-12-05"):
        inception.load_inception(tmp_path / "nope.npz")
    np.savez(tmp_path / "sd.npz", **sd)  # plain state-dict names also load
    variables = inception.load_inception(tmp_path / "sd.npz")
    np.testing.assert_array_equal(variables["params"]["fc"]["kernel"], sd["fc.weight"].T)


def test_bad_images_raise():
    net = inception_v3.InceptionV3()
    with pytest.raises(ValueError, match="uint8"):
        net.init(jax.random.PRNGKey(0), np.zeros((1, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="NHWC"):
        net.init(jax.random.PRNGKey(0), np.zeros((1, 3, 32, 32), np.uint8))
