"""CLIP BPE tokenizer: the golden prompts, edge cases from the reference tokenizer, package data."""
import hashlib
import importlib.resources
import json

import numpy as np
import pytest

from gan_zoo.feature_nets import clip_tokenizer as ct

# Expected ids of extra prompts (no padding): produced ONCE on 2026-12-05 by open_clip_torch 3.3.0's
# `open_clip/tokenizer.py` SimpleTokenizer (clean='lower', context 77, ftfy 6.3.1), run from the
# unpacked wheel, and hard-coded here; open_clip is not a test dependency.
REFERENCE_IDS = {
    "": [49406, 49407],
    "Don't STOP, I'LL go!": [49406, 847, 713, 1691, 267, 328, 1342, 861, 256, 49407],
    "café naïve 東京 🙂": [49406, 15304, 1097, 35689, 563, 48338, 21078, 361, 14860, 49407],
    "cafÃ© &amp;lt;b&amp;gt; x": [49406, 15304, 283, 321, 285, 343, 49407],  # mojibake, 2x HTML
    "tab\tnew\nline   2024 GAN-XL": [49406, 14724, 686, 1148, 273, 271, 273, 275, 1670, 268,
                                      8833, 49407],
}
VOCAB_SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"  # golden README


def test_golden_prompts(golden):
    meta = json.loads((golden / "feat_clip_small.json").read_text())["tokenizer"]
    with np.load(golden / "feat_clip_small.npz") as d:
        want = d["input/text_tokens"]
    assert len(meta["prompts"]) == want.shape[0] == 3
    got = ct.tokenize(meta["prompts"])
    assert got.shape == (3, 77)
    np.testing.assert_array_equal(got, want)
    assert got[2, -1] == ct.EOT_ID and np.all(got[2] != 0)  # the over-long prompt is cut at 77
    vocab = ct.default_tokenizer().ids
    assert [vocab[s] for s in meta["token_strings"][1]] == got[1, :19].tolist()


@pytest.mark.parametrize("text", list(REFERENCE_IDS))
def test_reference_edge_cases(text):
    want = REFERENCE_IDS[text]
    row = ct.tokenize(text)[0]
    np.testing.assert_array_equal(row[:len(want)], want)
    assert np.all(row[len(want):] == ct.PAD_ID)


def test_truncation_boundary():
    """75 pieces + start + end fill 77 exactly (no cut); 76 pieces: the 77th id is replaced by the
    end token (reference: both rows are start, 75 x 343 'x</w>', end)."""
    full, cut = ct.tokenize(["x " * 75, "x " * 76])
    want = [ct.SOT_ID] + [343] * 75 + [ct.EOT_ID]
    np.testing.assert_array_equal(full, want)
    np.testing.assert_array_equal(cut, want)
    np.testing.assert_array_equal(ct.tokenize("a photo of a cat", context_length=5),
                                  [[49406, 320, 1125, 539, 49407]])  # reference, context 5


def test_vocabulary_is_package_data():
    data = importlib.resources.files("gan_zoo.feature_nets") / "data"
    blob = (data / ct.VOCAB_FILE).read_bytes()
    assert hashlib.sha256(blob).hexdigest() == VOCAB_SHA256
    assert "MIT License" in (data / "LICENSE.openai_clip").read_text()
    assert "Permission is hereby granted" in (data / "LICENSE.open_clip").read_text()
    tok = ct.default_tokenizer()
    assert len(tok.ids) == ct.VOCAB_SIZE
    assert tok.ids["<start_of_text>"] == ct.SOT_ID and tok.ids["<end_of_text>"] == ct.EOT_ID


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="context_length"):
        ct.tokenize("x", context_length=1)
    with pytest.raises(ValueError, match="merges"):
        ct.Tokenizer([("a", "b")])
