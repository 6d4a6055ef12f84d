"""`velollm inspect` and `velollm quantize`, checked against the gguf Python
package (GGUFReader for structure, gguf.quants for the numbers)."""
import json
import os
import subprocess

import numpy as np
import pytest
from gguf import GGMLQuantizationType as QT
from gguf import GGUFReader, GGUFWriter, quants

from conftest import MODELS, model_path


def run(binary, *args, timeout=600):
    return subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True, timeout=timeout)


def inspect_json(binary, path):
    r = run(binary, "inspect", "--json", path)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def field(reader, key):
    f = reader.fields.get(key)
    return None if f is None else f.contents()


def assert_one_line_error(r, substring):
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("velollm: error: "), r.stderr
    assert substring in lines[0], r.stderr


# ---- inspect ------------------------------------------------------------------

def test_inspect_json_velo_code_40m(velollm_bin):
    path = model_path(MODELS["velo-code-40m"])
    j = inspect_json(velollm_bin, path)
    assert j["architecture"] == "llama"
    assert j["name"] == "velo-code-40m"
    assert j["block_count"] == 8
    assert j["embedding_length"] == 512
    assert j["head_count"] == 8
    assert j["head_count_kv"] == 2
    assert j["feed_forward_length"] == 1536
    assert j["context_length"] == 1024
    assert j["vocab_size"] == 32000
    assert j["tokenizer_model"] == "llama"
    assert j["has_chat_template"] is False
    assert j["gguf_version"] == 3
    assert j["tensor_count"] == 74
    assert j["file_size"] == os.path.getsize(path)
    assert j["file_type"] == 7 and j["file_type_name"] == "MOSTLY_Q8_0"
    assert abs(j["parameter_count"] / 1e6 - 40.5) < 0.05
    assert j["parameter_count_human"] == "40.5M"
    assert j["tensor_types"]["Q8_0"]["count"] == 57 and j["tensor_types"]["F32"]["count"] == 17
    assert j["weights_human"].endswith("MiB")


@pytest.mark.parametrize("model", sorted(MODELS))
def test_inspect_json_matches_gguf_py(velollm_bin, model):
    path = model_path(MODELS[model])
    j = inspect_json(velollm_bin, path)
    r = GGUFReader(path)
    arch = field(r, "general.architecture")
    assert j["architecture"] == arch
    for ours, key in [("block_count", "block_count"), ("embedding_length", "embedding_length"),
                      ("context_length", "context_length"), ("head_count", "attention.head_count"),
                      ("head_count_kv", "attention.head_count_kv")]:
        assert j[ours] == field(r, f"{arch}.{key}"), ours
    assert j["vocab_size"] == len(r.fields["tokenizer.ggml.tokens"].data)
    assert j["tokenizer_model"] == field(r, "tokenizer.ggml.model")
    assert j["has_chat_template"] == ("tokenizer.chat_template" in r.fields)
    assert j["tensor_count"] == len(r.tensors)
    assert j["parameter_count"] == sum(int(t.n_elements) for t in r.tensors)
    assert j["weights_bytes"] == sum(int(t.n_bytes) for t in r.tensors)
    by_type = {}
    for t in r.tensors:
        e = by_type.setdefault(t.tensor_type.name, [0, 0])
        e[0] += 1
        e[1] += int(t.n_bytes)
    assert {k: [v["count"], v["bytes"]] for k, v in j["tensor_types"].items()} == by_type
    assert j["metadata_count"] == len([k for k in r.fields if not k.startswith("GGUF.")])


def test_inspect_text_and_listings(velollm_bin):
    path = model_path(MODELS["smollm2"])
    r = run(velollm_bin, "inspect", "--tensors", "--metadata", path)
    assert r.returncode == 0, r.stderr
    assert "architecture:     llama" in r.stdout
    assert "heads:            9 (kv heads 3)" in r.stdout
    assert "chat template:    yes" in r.stdout
    assert "token_embd.weight" in r.stdout and "tokenizer.ggml.tokens" in r.stdout
    j = inspect_json(velollm_bin, path)
    r2 = run(velollm_bin, "inspect", "--json", "--tensors", path)
    tensors = json.loads(r2.stdout)["tensors"]
    assert len(tensors) == j["tensor_count"]
    assert tensors[0]["name"] == GGUFReader(path).tensors[0].name


# ---- quantize -----------------------------------------------------------------

def rel_rmse(a, b):
    return float(np.sqrt(np.mean((a - b) ** 2)) / (np.sqrt(np.mean(b ** 2)) + 1e-12))


@pytest.fixture(scope="module")
def q4k_40m(velollm_bin, tmp_path_factory):
    """velo-code-40m quantized Q8_0 -> Q4_K by velollm (path, stderr)."""
    out = tmp_path_factory.mktemp("q4k") / "velo-code-40m.Q4_K.gguf"
    r = run(velollm_bin, "quantize", model_path(MODELS["velo-code-40m"]), out, "Q4_K", "--threads", "2")
    assert r.returncode == 0, r.stderr
    return out, r.stderr


def test_quantize_q8_0_to_q4_k_round_trip(velollm_bin, q4k_40m):
    src_path = model_path(MODELS["velo-code-40m"])
    out, log = q4k_40m
    assert "[74/74]" in log
    j = inspect_json(velollm_bin, out)
    assert j["tensor_types"]["Q4_K"]["count"] == 57 and j["tensor_types"]["F32"]["count"] == 17
    assert j["parameter_count"] == inspect_json(velollm_bin, src_path)["parameter_count"]
    assert j["file_type"] == 14 and j["block_count"] == 8 and j["vocab_size"] == 32000

    src, dst = GGUFReader(src_path), GGUFReader(out)
    for key, f in src.fields.items():  # every key copied, file type updated
        if key.startswith("GGUF.") or key == "general.file_type":
            continue
        assert key in dst.fields, key
        if key != "tokenizer.ggml.tokens":
            assert np.array_equal(np.asarray(f.contents()), np.asarray(dst.fields[key].contents())), key
    assert field(dst, "general.file_type") == 14 and field(dst, "general.quantization_version") == 2
    assert field(dst, "tokenizer.ggml.tokens") == field(src, "tokenizer.ggml.tokens")
    dt = {t.name: t for t in dst.tensors}
    worst = 0.0
    for t in src.tensors:
        o = dt[t.name]
        assert list(o.shape) == list(t.shape)
        ref = quants.dequantize(t.data, t.tensor_type)
        if t.tensor_type == QT.F32:
            assert o.tensor_type == QT.F32 and np.array_equal(np.asarray(o.data), np.asarray(t.data))
        else:
            assert o.tensor_type == QT.Q4_K
            worst = max(worst, rel_rmse(quants.dequantize(o.data, QT.Q4_K), ref))
    # 4.5-bit K-quant of Gaussian-like weights: relative RMS error about 0.07-0.09.
    assert worst < 0.12, worst


def test_quantized_model_runs_in_llama_cpp(q4k_40m):
    """The reference engine loads our Q4_K file and predicts like the Q8_0 original."""
    import llama_cpp
    text = "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, x):\n"

    def teacher_forced_logits(path):
        m = llama_cpp.Llama(model_path=str(path), logits_all=True, verbose=False, n_ctx=256, n_threads=2)
        toks = m.tokenize(text.encode())
        m.eval(toks)
        return np.array(m.scores[: len(toks)])

    a = teacher_forced_logits(model_path(MODELS["velo-code-40m"]))
    b = teacher_forced_logits(q4k_40m[0])
    assert a.shape == b.shape and a.shape[1] == 32000
    agree = float((a.argmax(1) == b.argmax(1)).mean())
    assert agree >= 0.8, agree  # measured 29/30 positions


def test_quantize_matches_gguf_py_byte_for_byte(velollm_bin, tmp_path):
    """Q8_0 -> Q5_0: every weight matrix equals gguf-py's quantize(dequantize(src))."""
    src_path = model_path(MODELS["velo-code-draft-12m"])
    out = tmp_path / "q5_0.gguf"
    r = run(velollm_bin, "quantize", src_path, out, "q5_0", "--threads", "3")
    assert r.returncode == 0, r.stderr
    dt = {t.name: t for t in GGUFReader(out).tensors}
    n = 0
    for t in GGUFReader(src_path).tensors:
        if t.tensor_type != QT.Q8_0:
            continue
        want = quants.quantize(quants.dequantize(t.data, QT.Q8_0), QT.Q5_0)
        assert dt[t.name].tensor_type == QT.Q5_0
        assert np.array_equal(np.asarray(dt[t.name].data).reshape(-1), want.reshape(-1)), t.name
        n += 1
    assert n > 10


def write_tiny_f32_model(path):
    """A model whose rows exercise every branch of the type policy."""
    rng = np.random.default_rng(7)
    w = GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_string("general.name", "tiny")
    tensors = {
        "blk.0.attn_k.weight": rng.standard_normal((4, 256)).astype(np.float32),   # fits Q4_K
        "blk.0.ffn_down.weight": rng.standard_normal((3, 96)).astype(np.float32),  # 96 % 256 -> Q5_0
        "blk.0.attn_q.weight": rng.standard_normal((2, 48)).astype(np.float32),    # 48 % 32 -> F16
        "blk.0.attn_norm.weight": rng.standard_normal(256).astype(np.float16),     # 1-D -> F32
        "blk.0.ffn_norm.weight": rng.standard_normal((2, 256)).astype(np.float32),  # norm: F32
        "pos_ids": np.arange(8, dtype=np.int32),                                    # integers: copied
    }
    for name, a in tensors.items():
        w.add_tensor(name, a)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return tensors


def test_quantize_policy_and_fallbacks(velollm_bin, tmp_path):
    src = tmp_path / "tiny.gguf"
    arrays = write_tiny_f32_model(src)
    out1, out3 = tmp_path / "q4k_t1.gguf", tmp_path / "q4k_t3.gguf"
    r = run(velollm_bin, "quantize", src, out1, "Q4_K", "--threads", "1")
    assert r.returncode == 0, r.stderr
    assert "blk.0.ffn_down.weight" in r.stderr and "using Q5_0" in r.stderr
    assert "using F16" in r.stderr
    assert run(velollm_bin, "quantize", src, out3, "Q4_K", "-t", "3").returncode == 0
    assert out1.read_bytes() == out3.read_bytes()  # thread count never changes the output

    got = {t.name: t for t in GGUFReader(out1).tensors}
    want_types = {"blk.0.attn_k.weight": QT.Q4_K, "blk.0.ffn_down.weight": QT.Q5_0, "blk.0.attn_q.weight": QT.F16,
                  "blk.0.attn_norm.weight": QT.F32, "blk.0.ffn_norm.weight": QT.F32, "pos_ids": QT.I32}
    assert {k: v.tensor_type for k, v in got.items()} == want_types
    assert np.array_equal(np.asarray(got["blk.0.ffn_down.weight"].data).reshape(-1),
                          quants.quantize(arrays["blk.0.ffn_down.weight"], QT.Q5_0).reshape(-1))
    assert np.array_equal(np.asarray(got["blk.0.attn_q.weight"].data).reshape(2, 48),
                          arrays["blk.0.attn_q.weight"].astype(np.float16))
    assert np.array_equal(np.asarray(got["blk.0.attn_norm.weight"].data),
                          arrays["blk.0.attn_norm.weight"].astype(np.float32))
    assert np.array_equal(np.asarray(got["pos_ids"].data), arrays["pos_ids"])
    k = quants.dequantize(got["blk.0.attn_k.weight"].data, QT.Q4_K)
    assert rel_rmse(k, arrays["blk.0.attn_k.weight"]) < 0.12
    assert inspect_json(velollm_bin, out1)["file_type"] == 14


def test_quantize_to_f32_is_exact(velollm_bin, tmp_path):
    src_path = model_path(MODELS["velo-code-draft-12m"])
    out = tmp_path / "f32.gguf"
    r = run(velollm_bin, "quantize", src_path, out, "f32")
    assert r.returncode == 0, r.stderr
    dt = {t.name: t for t in GGUFReader(out).tensors}
    for t in GGUFReader(src_path).tensors:
        assert dt[t.name].tensor_type == QT.F32
        assert np.array_equal(np.asarray(dt[t.name].data).reshape(-1),
                              quants.dequantize(t.data, t.tensor_type).reshape(-1)), t.name
    assert inspect_json(velollm_bin, out)["file_type"] == 0


# ---- CLI errors -------------------------------------------------------------------

@pytest.fixture
def bad_inputs(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a model\n")
    model = model_path(MODELS["velo-code-40m"]).read_bytes()
    trunc_meta, trunc_data = tmp_path / "truncated_meta.gguf", tmp_path / "truncated_data.gguf"
    trunc_meta.write_bytes(model[:200_000])  # inside the vocabulary
    trunc_data.write_bytes(model[:-4096])    # inside the last tensor
    return {"missing": tmp_path / "missing.gguf", "text": text, "truncated_meta": trunc_meta,
            "truncated_data": trunc_data}


@pytest.mark.parametrize("case,msg", [("missing", "cannot open: No such file"), ("text", "not a GGUF file"),
                                      ("truncated_meta", "(truncated or corrupt file)"),
                                      ("truncated_data", "runs past the end of the file")])
def test_cli_errors_bad_input(velollm_bin, bad_inputs, tmp_path, case, msg):
    assert_one_line_error(run(velollm_bin, "inspect", bad_inputs[case]), msg)
    assert_one_line_error(run(velollm_bin, "inspect", "--json", bad_inputs[case]), msg)
    out = tmp_path / "out.gguf"
    assert_one_line_error(run(velollm_bin, "quantize", bad_inputs[case], out, "Q4_K"), msg)
    assert not out.exists()


def test_cli_errors_malformed_corpus(velollm_bin):
    bad_dir = os.path.join(os.path.dirname(__file__), "..", "data", "gguf_bad")
    assert_one_line_error(run(velollm_bin, "inspect", os.path.join(bad_dir, "tensor_overlap.gguf")),
                          "tensor 'b' data overlaps tensor 'a'")
    assert_one_line_error(run(velollm_bin, "inspect", os.path.join(bad_dir, "duplicate_key_newline.gguf")),
                          "duplicate metadata key 'a\\x0ab'")


@pytest.mark.parametrize("type_name,msg", [("Q9_Z", "unknown or unsupported output type 'Q9_Z'"),
                                           ("Q8_K", "unsupported output type 'Q8_K'"),
                                           ("IQ2_XXS", "unsupported output type 'IQ2_XXS'")])
def test_quantize_rejects_unknown_types(velollm_bin, tmp_path, type_name, msg):
    out = tmp_path / "out.gguf"
    r = run(velollm_bin, "quantize", model_path(MODELS["velo-code-draft-12m"]), out, type_name)
    assert_one_line_error(r, msg)
    assert "Q4_K" in r.stderr  # lists the valid choices
    assert not out.exists()


def test_quantize_refuses_to_overwrite_its_input(velollm_bin, tmp_path):
    src = tmp_path / "tiny.gguf"
    write_tiny_f32_model(src)
    before = src.read_bytes()
    assert_one_line_error(run(velollm_bin, "quantize", src, src, "Q8_0"), "is the input file")
    assert src.read_bytes() == before


def test_quantize_unwritable_output(velollm_bin, tmp_path):
    src = tmp_path / "tiny.gguf"
    write_tiny_f32_model(src)
    assert_one_line_error(run(velollm_bin, "quantize", src, tmp_path / "no" / "such" / "dir.gguf", "Q8_0"),
                          "cannot create")


def test_cli_missing_arguments(velollm_bin):
    assert run(velollm_bin, "inspect").returncode != 0
    assert run(velollm_bin, "quantize", "a.gguf").returncode != 0
    assert run(velollm_bin, "quantize", "a.gguf", "b.gguf", "Q4_K", "--threads", "0").returncode != 0
