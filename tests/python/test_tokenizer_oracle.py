"""Tokenizer oracles: velollm's token ids must equal llama.cpp's, token for token.

For each vocabulary (Llama 2 SPM, Gemma 3 SPM, SmolLM2 byte-level BPE) the seeded corpus of
tests/python/tokenizer_corpus.py (>5,000 strings) is tokenized with and without special-token
parsing by llama.cpp (llama-cpp-python, vocab_only) and by tool_tokenize_batch; ids, decoded
text, streamed text and end-of-generation sets must match exactly. HF `tokenizers` (SmolLM2,
rebuilt from the GGUF vocab + merges) and `sentencepiece` (the Llama 2 tokenizer.model) are
second oracles. Counts and match rates are printed (pytest -s).
"""
import ctypes
import subprocess

import llama_cpp
import pytest

from conftest import MODELS, model_path
from tokenizer_corpus import corpus

ORACLE_MODELS = ["velo-code-40m", "gemma3", "smollm2"]
CORPUS = corpus(1234)


def _valid_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


class Batch:
    """tool_tokenize_batch driven with one request line per query."""

    def __init__(self, tools_dir, model):
        self.exe = tools_dir / "tool_tokenize_batch"
        if not self.exe.exists():
            pytest.fail(f"{self.exe} not built")
        self.model = model

    def run(self, lines):
        r = subprocess.run([str(self.exe), str(self.model)], input="".join(l + "\n" for l in lines).encode(),
                           capture_output=True, timeout=600)
        assert r.returncode == 0, r.stderr.decode(errors="replace")
        out = r.stdout.decode().split("\n")
        assert len(out) == len(lines) + 1, (len(out), len(lines))
        return out[:-1]

    def encode(self, items):  # items: (bytes, add_bos, special)
        lines = self.run([f"E {int(b)} {int(s)} {t.hex()}" for t, b, s in items])
        return [[int(x) for x in l.split()] for l in lines]

    def decode(self, op, ids_list, render):
        lines = self.run([f"{op} {int(render)} " + " ".join(map(str, ids)) for ids in ids_list])
        return [bytes.fromhex(l) for l in lines]


class Llama:
    def __init__(self, model):
        self.llm = llama_cpp.Llama(model_path=str(model), vocab_only=True, verbose=False)
        self.vocab = llama_cpp.llama_model_get_vocab(self.llm.model)

    def encode(self, text, add_bos, special):
        return self.llm.tokenize(text, add_bos=add_bos, special=special)

    def detokenize(self, ids, render):
        arr = (llama_cpp.llama_token * max(1, len(ids)))(*ids)
        cap = 64 + 64 * len(ids)
        buf = ctypes.create_string_buffer(cap)
        n = llama_cpp.llama_detokenize(self.vocab, arr, len(ids), buf, cap, False, render)
        assert n >= 0
        return buf.raw[:n]

    def piece(self, t, render):
        buf = ctypes.create_string_buffer(256)
        n = llama_cpp.llama_token_to_piece(self.vocab, t, buf, 256, 0, render)
        assert n >= 0
        return buf.raw[:n]

    def eog(self):
        n = llama_cpp.llama_vocab_n_tokens(self.vocab)
        return [t for t in range(n) if llama_cpp.llama_vocab_is_eog(self.vocab, t)]


@pytest.fixture(scope="module", params=ORACLE_MODELS)
def setup(request, tools_dir):
    path = model_path(MODELS[request.param])
    return request.param, Batch(tools_dir, path), Llama(path)


def _report(what, name, n, bad):
    print(f"\n[{name}] {what}: {n - len(bad)}/{n} match ({100.0 * (n - len(bad)) / max(n, 1):.3f}%)")
    for b in bad[:5]:
        print("   mismatch:", b)


def test_encode_matches_llama_cpp(setup):
    name, ours, ref = setup
    items = []
    for i, (_, text) in enumerate(CORPUS):
        for special in (True, False):
            items.append((text, (i + special) % 2 == 0, special))
    got = ours.encode(items)
    bad = []
    for (text, bos, special), g in zip(items, got):
        want = ref.encode(text, bos, special)
        if g != want:
            bad.append((text[:80], bos, special, g[:20], want[:20]))
    _report("encode (ids) vs llama.cpp", name, len(items), bad)
    assert len(items) >= 10000
    assert not bad


def test_decode_and_stream_match_llama_cpp(setup):
    name, ours, ref = setup
    ids_list = [ref.encode(text, i % 2 == 0, True) for i, (_, text) in enumerate(CORPUS)]
    for render in (False, True):
        got = ours.decode("D", ids_list, render)
        bad = [(ids[:10], g[:60], w[:60]) for ids, g in zip(ids_list, got)
               if g != (w := ref.detokenize(ids, render))]
        _report(f"decode(render_special={render}) vs llama_detokenize", name, len(ids_list), bad)
        assert not bad
    # Streaming = the concatenated pieces, always valid UTF-8 (U+FFFD for broken bytes).
    streamed = ours.decode("S", ids_list, True)
    bad, n_valid = [], 0
    for ids, s in zip(ids_list, streamed):
        whole = b"".join(ref.piece(t, True) for t in ids)
        assert _valid_utf8(s), s
        if _valid_utf8(whole):
            n_valid += 1
            if s != whole:
                bad.append((ids[:10], s[:60], whole[:60]))
    _report("stream vs concatenated llama.cpp pieces (valid UTF-8 cases)", name, n_valid, bad)
    assert not bad


def _lossy_bytes(name):
    """Input that no token sequence can reproduce: SPM renders U+2581 as a space; a
    byte-level vocab without a byte's codepoint drops that byte (SmolLM2 lacks several)."""
    import gguf

    if name != "smollm2":
        return ["\u2581".encode()]
    toks = set(gguf.GGUFReader(str(model_path(MODELS[name]))).fields["tokenizer.ggml.tokens"].contents())
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    cp, n = {}, 0
    for b in range(256):
        if b in printable:
            cp[b] = b
        else:
            cp[b] = 256 + n
            n += 1
    return [bytes([b]) for b in range(256) if chr(cp[b]) not in toks]


def test_round_trip(setup):
    name, ours, _ = setup
    lossy = _lossy_bytes(name)
    print(f"\n[{name}] inputs excluded from the round trip when they contain: {lossy}")
    texts = [t for _, t in CORPUS if _valid_utf8(t) and not any(x in t for x in lossy)]
    assert len(texts) > 3000
    ids_list = ours.encode([(t, False, False) for t in texts])
    got = ours.decode("D", ids_list, True)
    bad = [(t[:60], g[:60]) for t, g in zip(texts, got) if g != t]
    _report("decode(encode(x)) == x (valid UTF-8, special as text)", name, len(texts), bad)
    assert not bad


def test_eog_set_matches_llama_cpp(setup):
    name, ours, ref = setup
    got = [int(x) for x in ours.run(["G"])[0].split()]
    want = ref.eog()
    print(f"\n[{name}] EOG tokens: ours {got} llama.cpp {want}")
    assert got == want


PRE_VARIANTS = ["default", "gpt-2", "llama-bpe", "qwen2", "stablelm2", "starcoder"]


@pytest.fixture(scope="module")
def pre_variant_files(tmp_path_factory):
    """SmolLM2's vocabulary (metadata only) re-labelled with other tokenizer.ggml.pre values,
    to check every pre-tokenizer (and its clean_spaces / ignore_merges flags) against llama.cpp."""
    from gguf import GGUFReader, GGUFValueType, GGUFWriter

    r = GGUFReader(str(model_path(MODELS["smollm2"])))
    out = {}
    for pre in PRE_VARIANTS:
        dst = tmp_path_factory.mktemp("pre") / f"smollm2-{pre}.gguf"
        w = GGUFWriter(str(dst), arch=r.fields["general.architecture"].contents())
        for name, f in r.fields.items():
            if name.startswith("GGUF.") or name == "general.architecture":
                continue
            t = f.types[0]
            w.add_key_value(name, pre if name == "tokenizer.ggml.pre" else f.contents(), t,
                            sub_type=f.types[1] if t == GGUFValueType.ARRAY and len(f.types) > 1 else None)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        out[pre] = dst
    return out


@pytest.mark.parametrize("pre", PRE_VARIANTS)
def test_pre_tokenizers_match_llama_cpp(pre, pre_variant_files, tools_dir):
    path = pre_variant_files[pre]
    ours, ref = Batch(tools_dir, path), Llama(path)
    items = [(t, False, i % 2 == 0) for i, (_, t) in enumerate(CORPUS)]
    got = ours.encode(items)
    bad = [(t[:60], g[:12], w[:12]) for (t, b, s), g in zip(items, got) if g != (w := ref.encode(t, b, s))]
    _report(f"encode with pre={pre} vs llama.cpp", "smollm2-vocab", len(items), bad)
    assert not bad
    dec = ours.decode("D", got, False)
    bad = [(ids[:10], d[:40]) for ids, d in zip(got, dec) if d != ref.detokenize(ids, False)]
    _report(f"decode with pre={pre} vs llama_detokenize", "smollm2-vocab", len(got), bad)
    assert not bad


def _hf_smollm(path):
    """SmolLM2's HF tokenizer rebuilt from the GGUF: BPE(vocab, merges), digits isolated, byte-level."""
    import gguf
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

    r = gguf.GGUFReader(str(path))
    toks = r.fields["tokenizer.ggml.tokens"].contents()
    types = r.fields["tokenizer.ggml.token_type"].contents()
    merges = [tuple(m.split(" ", 1)) for m in r.fields["tokenizer.ggml.merges"].contents()]
    tk = Tokenizer(models.BPE({t: i for i, t in enumerate(toks)}, merges, ignore_merges=False))
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\p{N}"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens([AddedToken(toks[i], special=True, normalized=False)
                           for i in range(len(toks)) if types[i] == 3])
    return tk


def test_hf_tokenizers_smollm2(tools_dir):
    path = model_path(MODELS["smollm2"])
    hf = _hf_smollm(path)
    ours = Batch(tools_dir, path)
    ref = Llama(path)
    texts = [t for _, t in CORPUS if _valid_utf8(t)]
    for special in (True, False):
        hf.encode_special_tokens = not special
        got = ours.encode([(t, False, special) for t in texts])
        want = [hf.encode(t.decode(), add_special_tokens=False).ids for t in texts]
        bad = [(t, g, w) for t, g, w in zip(texts, got, want) if g != w]
        _report(f"encode vs HF tokenizers (special={special})", "smollm2", len(texts),
                [(t[:40], g[:12], w[:12]) for t, g, w in bad])
        # HF drops bytes whose codepoint is not in the vocab before merging; llama.cpp keeps
        # them as unmergeable symbols. Every disagreement must be such a llama.cpp-vs-HF case.
        lossy = _lossy_bytes("smollm2")
        for t, g, _ in bad:
            assert any(x in t for x in lossy), t
            assert g == ref.encode(t, False, special), t
        assert len(bad) <= len(texts) // 1000


def test_sentencepiece_llama2(tools_dir):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(model_path("llama2-tokenizer.model")))
    ours = Batch(tools_dir, model_path(MODELS["velo-code-40m"]))
    texts = [t for _, t in CORPUS if _valid_utf8(t)]
    got = ours.encode([(t, True, False) for t in texts])
    want = [[1] + sp.encode(t.decode()) for t in texts]
    bad = [(t[:60], g[:12], w[:12]) for t, g, w in zip(texts, got, want) if g != w]
    _report("encode vs sentencepiece (Llama 2 tokenizer.model)", "velo-code-40m", len(texts), bad)
    assert not bad
