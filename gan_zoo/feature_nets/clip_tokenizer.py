"""The CLIP BPE tokenizer (Radford et al. 2021, §2.4; the `SimpleTokenizer` of OpenAI CLIP and
open_clip, which StyleGAN-T calls through `open_clip.tokenize`; spec stylegan_xl_and_t.md §2.5).

    tokenize(["a photo of a cat"]) -> int32 [1, 77]: 49406 320 1125 539 320 2368 49407 0 ...

1. Clean: ftfy.fix_text, html.unescape twice, whitespace runs -> one space, strip, lower-case.
2. Pre-tokenize with the CLIP pattern (contractions, letter runs, single digits, runs of other
   non-space symbols), Unicode classes via the `regex` package.
3. Each piece: UTF-8 bytes -> the GPT-2 printable byte alphabet; `</w>` appended to its last
   symbol; merges applied by rank (lowest first) until none applies.
4. <start_of_text> + ids + <end_of_text>; longer than the context: cut to it and the last kept id
   is REPLACED by <end_of_text>; shorter: padded with 0.

The vocabulary `data/bpe_simple_vocab_16e6.txt.gz` (sha256 924691ac...6804a, OpenAI CLIP's file as
shipped in the open_clip_torch 3.3.0 wheel; MIT licences in data/LICENSE.*) is package data, so
this works offline. Vocabulary order: the 256 byte symbols, the same with `</w>`, the 48,894
merged strings (lines 1..48894 of the file), then the two special tokens (49406, 49407).
"""

import functools
import gzip
import html
import importlib.resources

import numpy as np

CONTEXT_LENGTH = 77  # CLIP's text context
VOCAB_SIZE = 49408
SOT, EOT = "<start_of_text>", "<end_of_text>"
SOT_ID, EOT_ID, PAD_ID = 49406, 49407, 0
NUM_MERGES = VOCAB_SIZE - 2 * 256 - 2  # 48,894 merge lines are used
VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
END_OF_WORD = "</w>"
# Step 2: special tokens, English contractions, letter runs, ONE digit, other non-space runs.
PATTERN = (SOT + "|" + EOT + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""")


@functools.lru_cache(maxsize=1)
def byte_alphabet() -> dict:
    """{byte: printable character}: the 188 printable Latin-1 bytes map to themselves, the other 68
    to chr(256), chr(257), ... in byte order (the GPT-2 byte-level BPE alphabet). The dict's order
    (printable bytes first, then the others) is the order of the first 256 vocabulary ids."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    others = [b for b in range(256) if b not in table]
    table.update({b: chr(256 + i) for i, b in enumerate(others)})
    return table


def clean(text: str) -> str:
    """Step 1: ftfy fix, HTML unescape twice, collapse whitespace, lower-case."""
    import ftfy  # a light dependency, imported when text is tokenized

    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split()).lower()


class Tokenizer:
    """Byte-level BPE over the CLIP vocabulary; `encode` gives the raw ids, `__call__` the padded
    [N, context] batch."""

    def __init__(self, merges: list, context_length: int = CONTEXT_LENGTH):
        import regex  # `re` lacks \\p{L}; imported lazily to keep `import gan_zoo` light

        if len(merges) != NUM_MERGES:
            raise ValueError(f"CLIP tokenizer: expected {NUM_MERGES} merges, got {len(merges)}")
        symbols = list(byte_alphabet().values())
        vocab = symbols + [s + END_OF_WORD for s in symbols] + ["".join(m) for m in merges]
        self.ids = {s: i for i, s in enumerate(vocab + [SOT, EOT])}
        self.ranks = {tuple(m): r for r, m in enumerate(merges)}
        self.pattern = regex.compile(PATTERN, regex.IGNORECASE)
        self.context_length = context_length
        self._cache = {SOT: [SOT_ID], EOT: [EOT_ID]}

    def _bpe(self, piece: str) -> list:
        """Step 3 for one byte-mapped piece -> its symbols."""
        word = list(piece[:-1]) + [piece[-1] + END_OF_WORD]
        while len(word) > 1:
            pairs = {(a, b) for a, b in zip(word, word[1:])}
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(word):  # merge every occurrence of `best`, left to right
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        return word

    def encode(self, text: str) -> list:
        """Steps 1-3: token ids of `text`, without start/end tokens or padding."""
        alphabet, ids = byte_alphabet(), []
        for piece in self.pattern.findall(clean(text)):
            if piece not in self._cache:
                mapped = "".join(alphabet[b] for b in piece.encode("utf-8"))
                self._cache[piece] = [self.ids[s] for s in self._bpe(mapped)]
            ids += self._cache[piece]
        return ids

    def __call__(self, texts, context_length: int | None = None) -> np.ndarray:
        """Step 4: str or list of str -> int32 [N, context_length]."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        n_ctx = context_length or self.context_length
        if n_ctx < 2:
            raise ValueError(f"CLIP tokenizer: context_length must be >= 2, got {n_ctx}")
        out = np.full((len(texts), n_ctx), PAD_ID, np.int32)
        for row, text in enumerate(texts):
            ids = [SOT_ID] + self.encode(text) + [EOT_ID]
            if len(ids) > n_ctx:
                ids = ids[:n_ctx - 1] + [EOT_ID]  # truncate; the last kept id becomes EOT
            out[row, :len(ids)] = ids
        return out


def read_merges(path=None) -> list:
    """The merge pairs of the vocabulary file (default: the packaged copy)."""
    if path is None:
        data = importlib.resources.files("gan_zoo.feature_nets") / "data" / VOCAB_FILE
        if not data.is_file():
            raise FileNotFoundError(f"CLIP tokenizer: package data {VOCAB_FILE} is missing from "
                                    "gan_zoo/feature_nets/data (reinstall gan_zoo)")
        raw = data.read_bytes()
    else:
        with open(path, "rb") as f:
            raw = f.read()
    lines = gzip.decompress(raw).decode("utf-8").split("\n")
    return [tuple(line.split()) for line in lines[1:NUM_MERGES + 1]]  # line 0 is a header


@functools.lru_cache(maxsize=1)
def default_tokenizer() -> Tokenizer:
    """The CLIP tokenizer over the packaged vocabulary (built once: ~1 s)."""
    return Tokenizer(read_merges())


def tokenize(texts, context_length: int = CONTEXT_LENGTH) -> np.ndarray:
    """int32 [N, context_length] CLIP token ids of a string or list of strings."""
    return default_tokenizer()(texts, context_length)
