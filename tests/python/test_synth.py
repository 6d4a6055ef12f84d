"""`velollm synth`: random-weight models in real shapes load in llama.cpp (llama-cpp-python)
and in `velollm run`; gguf-py reads the shapes, types and padded vocabulary we expect."""
import subprocess

import numpy as np
import pytest
from gguf import GGMLQuantizationType as QT
from gguf import GGUFReader
from llama_cpp import Llama

from conftest import MODELS, model_path


def velollm(bin_path, *args, timeout=300):
    return subprocess.run([str(bin_path), *map(str, args)], capture_output=True, text=True, timeout=timeout)


def synth(bin_path, out, preset, typ, *extra):
    r = velollm(bin_path, "synth", "--preset", preset, "--type", typ, "--layers", 2, "-o", out, "-t", 2, *extra)
    assert r.returncode == 0, r.stderr
    return r


def one_line_error(r, *needles):
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("velollm: error: "), r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def field(reader, key):
    f = reader.fields.get(key)
    return None if f is None else f.contents()


def llama_cpp_logits(path, text=b"Hello there, how are you?"):
    llm = Llama(model_path=str(path), n_ctx=128, n_threads=2, logits_all=True, verbose=False)
    tokens = llm.tokenize(text)
    llm.eval(tokens)
    logits = np.array(llm.scores[: len(tokens)], dtype=np.float32)
    return llm.n_vocab(), logits


def run_ok(bin_path, path):
    r = velollm(bin_path, "run", "-m", path, "-p", "Hello there", "-n", 4, "-t", 2, "--verbose")
    assert r.returncode == 0, r.stderr
    assert "generated 4 tokens" in r.stderr, r.stderr


# llama-3.2-1b: 2048 wide, 32 heads of 64 (8 kv), ffn 8192, tied, llama3 rope (rope_freqs),
# vocabulary 128256 (SmolLM2's 49152 tokens + 79104 pads).
@pytest.mark.parametrize("typ,matrix,embd,attn_v", [
    ("q8_0", QT.Q8_0, QT.Q8_0, QT.Q8_0),
    ("q4_k", QT.Q4_K, QT.Q6_K, QT.Q6_K),  # Q4_K_M: tied embedding as output (Q6_K); of 2 layers the last
    # gets "more bits" (Q6_K attn_v/ffn_down)
    ("bf16", QT.BF16, QT.BF16, QT.BF16),
])
def test_llama_3_2_1b_loads_in_llama_cpp_and_velollm(velollm_bin, tmp_path, typ, matrix, embd, attn_v):
    out = tmp_path / f"llama-3.2-1b-{typ}.gguf"
    r = synth(velollm_bin, out, "llama-3.2-1b", typ)
    assert r.stdout.startswith("synth: llama-3.2-1b (2 layers, vocab 128256)"), r.stdout
    assert "padded with 79104 control tokens" in r.stderr

    reader = GGUFReader(out)
    t = {x.name: x for x in reader.tensors}
    shapes = {n: [int(d) for d in x.shape] for n, x in t.items()}
    assert shapes["token_embd.weight"] == [2048, 128256]
    assert "output.weight" not in t  # tied
    assert shapes["rope_freqs.weight"] == [32]
    assert shapes["blk.1.attn_q.weight"] == [2048, 2048]
    assert shapes["blk.1.attn_k.weight"] == [2048, 512]
    assert shapes["blk.1.attn_v.weight"] == [2048, 512]
    assert shapes["blk.1.attn_output.weight"] == [2048, 2048]
    assert shapes["blk.1.ffn_gate.weight"] == [2048, 8192]
    assert shapes["blk.1.ffn_down.weight"] == [8192, 2048]
    assert len(t) == 3 + 2 * 9
    assert t["token_embd.weight"].tensor_type == embd
    assert t["blk.0.attn_q.weight"].tensor_type == matrix
    assert t["blk.0.attn_v.weight"].tensor_type == matrix
    assert t["blk.1.attn_v.weight"].tensor_type == attn_v
    assert t["blk.1.ffn_down.weight"].tensor_type == attn_v
    assert t["blk.0.attn_norm.weight"].tensor_type == QT.F32
    assert t["rope_freqs.weight"].tensor_type == QT.F32
    freqs = np.array(t["rope_freqs.weight"].data)
    assert freqs[0] == 1.0 and freqs[-1] == 32.0 and np.all(np.diff(freqs) >= 0)

    assert field(reader, "general.architecture") == "llama"
    assert field(reader, "llama.block_count") == 2
    assert field(reader, "llama.context_length") == 131072
    assert field(reader, "llama.rope.freq_base") == 500000.0
    assert field(reader, "llama.attention.head_count_kv") == 8
    tokens = field(reader, "tokenizer.ggml.tokens")
    types = field(reader, "tokenizer.ggml.token_type")
    assert len(tokens) == len(types) == 128256
    assert tokens[49151] != "<|synth_pad_49151|>" and tokens[49152] == "<|synth_pad_49152|>"
    assert tokens[-1] == "<|synth_pad_128255|>" and types[-1] == 3 and types[100] == 1
    assert field(reader, "tokenizer.ggml.model") == "gpt2"
    assert field(reader, "tokenizer.chat_template")

    n_vocab, logits = llama_cpp_logits(out)
    assert n_vocab == 128256
    assert np.all(np.isfinite(logits)) and logits.std() > 0.1
    run_ok(velollm_bin, out)


@pytest.mark.parametrize("preset,typ,arch", [
    ("qwen2.5-0.5b", "q4_k", "qwen2"),   # 896 wide: Q4_K rows fall back to Q5_0, as llama.cpp does
    ("gemma3-1b", "f16", "gemma3"),
    ("qwen3-8b", "q8_0", "qwen3"),
])
def test_other_architectures_load_in_llama_cpp(velollm_bin, tmp_path, preset, typ, arch):
    out = tmp_path / f"{preset}.gguf"
    synth(velollm_bin, out, preset, typ)
    reader = GGUFReader(out)
    assert field(reader, "general.architecture") == arch
    names = {x.name for x in reader.tensors}
    assert ("blk.0.attn_q.bias" in names) == (arch == "qwen2")
    assert ("blk.0.attn_q_norm.weight" in names) == (arch in ("qwen3", "gemma3"))
    assert ("blk.0.post_ffw_norm.weight" in names) == (arch == "gemma3")
    n_vocab, logits = llama_cpp_logits(out)
    assert np.all(np.isfinite(logits)) and logits.std() > 0.1
    run_ok(velollm_bin, out)


def test_spm_vocabulary_and_determinism(velollm_bin, tmp_path):
    code = model_path(MODELS["velo-code-40m"])  # llama2 SentencePiece vocabulary, 32000 tokens
    a, b, c = (tmp_path / n for n in ("a.gguf", "b.gguf", "c.gguf"))
    r = synth(velollm_bin, a, "smollm2-135m", "q4_0", "--vocab-from", code, "--seed", 7)
    assert "padded with 17152 control tokens" in r.stderr
    synth(velollm_bin, b, "smollm2-135m", "q4_0", "--vocab-from", code, "--seed", 7)
    synth(velollm_bin, c, "smollm2-135m", "q4_0", "--vocab-from", code, "--seed", 8)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    reader = GGUFReader(a)
    assert field(reader, "tokenizer.ggml.model") == "llama"
    assert len(field(reader, "tokenizer.ggml.scores")) == 49152
    n_vocab, logits = llama_cpp_logits(a)
    assert n_vocab == 49152 and np.all(np.isfinite(logits))
    run_ok(velollm_bin, a)


def test_errors(velollm_bin, tmp_path):
    out = tmp_path / "x.gguf"
    one_line_error(velollm(velollm_bin, "synth", "--preset", "llama-9b", "--type", "q8_0", "-o", out),
                   "unknown preset 'llama-9b'", "llama-3.1-8b", "smollm2-135m")
    one_line_error(velollm(velollm_bin, "synth", "--preset", "llama-3.2-1b", "--type", "q3_k", "-o", out),
                   "unknown type 'q3_k'", "bf16, f16, q8_0, q4_k, q4_0, q6_k")
    one_line_error(velollm(velollm_bin, "synth", "--preset", "llama-3.2-1b", "--type", "q8_0",
                           "-o", "/nonexistent-dir/x.gguf"), "cannot write /nonexistent-dir/x.gguf")
    one_line_error(velollm(velollm_bin, "synth", "--preset", "llama-3.2-1b", "--type", "q8_0", "-o", out,
                           "--vocab-from", tmp_path / "missing.gguf"), "vocabulary source")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind
