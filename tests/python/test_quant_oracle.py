"""velollm's reference (de)quantization (src/quant) against two oracles, bit for bit.

* gguf-py (`gguf.quants`): dequantization of every type it implements (all of
  ours but Q8_K) and quantization where it has it (F16, BF16, Q4_0, Q4_1, Q5_0,
  Q5_1, Q8_0).
* ggml itself, the C library inside llama-cpp-python (libggml-base), through
  ctypes: `dequantize_row_<t>` and `quantize_row_<t>_ref` for every quantized
  type, the K-quants and Q8_K included.

Dequantization input is random bytes with the fp16/fp32 scale fields made finite;
F32/F16/BF16 rows are raw random bits (inf and NaN included). Floats are compared
as bit patterns, any NaN equal to any NaN.
"""
import ctypes
import importlib.util
import subprocess
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType as T
from gguf import quants
from gguf.constants import GGML_QUANT_SIZES

ALL_TYPES = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
             "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K"]
BLOCK_TYPES = ALL_TYPES[3:]
GGUF_PY_QUANTIZE = ["F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"]

# Byte offsets of the fp16 scale fields in each block (quant/blocks.h).
HALF_FIELDS = {
    "Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0],
    "Q2_K": [80, 82], "Q3_K": [108], "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208],
}
N_BLOCKS = 512


@pytest.fixture(scope="module")
def tool(tools_dir) -> Path:
    p = tools_dir / "tool_quant_oracle"
    if not p.exists():
        pytest.fail(f"{p} not built (cmake --build ... --target tool_quant_oracle)")
    return p


@pytest.fixture(scope="module")
def ggml():
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.origin is None:
        pytest.fail("llama-cpp-python is not installed in the test venv")
    lib = Path(spec.origin).parent / "lib" / "libggml-base.so"
    if not lib.exists():
        pytest.fail(f"{lib} not found")
    return ctypes.CDLL(str(lib))


def run_tool(tool: Path, tmp_path: Path, mode: str, typ: str, data: bytes) -> bytes:
    src, dst = tmp_path / f"{typ}.in", tmp_path / f"{typ}.out"
    src.write_bytes(data)
    r = subprocess.run([str(tool), mode, typ, str(src), str(dst)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return dst.read_bytes()


def random_finite_halves(rng, n: int) -> np.ndarray:
    h = rng.integers(0, 1 << 16, size=n, dtype=np.uint16)
    inf_or_nan = (h & 0x7C00) == 0x7C00
    h[inf_or_nan] ^= 0x4000  # drop the top exponent bit: finite, still any sign/mantissa
    return h


def random_blocks(typ: str, rng, n_blocks: int = N_BLOCKS) -> bytes:
    block_elems, block_bytes = GGML_QUANT_SIZES[T[typ]]
    raw = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
    for off in HALF_FIELDS.get(typ, []):
        raw[:, off:off + 2] = random_finite_halves(rng, n_blocks).view(np.uint8).reshape(n_blocks, 2)
    if typ == "Q8_K":  # fp32 d: random finite floats over a wide range
        d = (rng.standard_normal(n_blocks) * 10.0 ** rng.integers(-30, 30, n_blocks)).astype(np.float32)
        raw[:, 0:4] = d.view(np.uint8).reshape(n_blocks, 4)
    return raw.tobytes()


def assert_same_floats(ours: np.ndarray, ref: np.ndarray, what: str):
    assert ours.shape == ref.shape, what
    a, b = ours.view(np.uint32), ref.view(np.uint32)
    both_nan = np.isnan(ours) & np.isnan(ref)
    bad = np.flatnonzero((a != b) & ~both_nan)
    assert bad.size == 0, (f"{what}: {bad.size} of {a.size} values differ; first at {bad[0]}: "
                           f"ours {ours[bad[0]]!r} ({a[bad[0]]:#010x}) ref {ref[bad[0]]!r} ({b[bad[0]]:#010x})")


def sample_rows(rng, n: int) -> np.ndarray:
    """Rows that exercise the quantizers: Gaussian at several magnitudes, uniform,
    heavy tails, all-zero / constant / single-spike blocks, exact half-way values."""
    parts = [
        rng.standard_normal(n) * 0.02,
        rng.standard_normal(n) * 3.0,
        rng.uniform(-1, 1, n),
        rng.standard_t(2, n),
        rng.standard_normal(n) + 0.5,          # all-positive-ish groups: non-zero min
        np.zeros(n),
        np.full(n, 0.37),
        np.where(np.arange(n) % 97 == 0, 5.0, 0.001),
        np.round(rng.standard_normal(n) * 8) / 2,  # many ties for the rounding rules
        -np.abs(rng.standard_normal(n)),
    ]
    return np.concatenate(parts).astype(np.float32)


# ---------------------------------------------------------------- dequantize

@pytest.mark.parametrize("typ", [t for t in ALL_TYPES if t != "Q8_K"])
def test_dequantize_matches_gguf_py(tool, tmp_path, typ):
    rng = np.random.default_rng(1000 + ALL_TYPES.index(typ))
    if typ in BLOCK_TYPES:
        data = random_blocks(typ, rng)
    else:  # plain float types: every bit pattern, including inf/NaN/subnormals
        data = rng.integers(0, 256, size=4096 * (4 if typ == "F32" else 2), dtype=np.uint8).tobytes()
    ours = np.frombuffer(run_tool(tool, tmp_path, "dequant", typ, data), dtype=np.float32)
    ref = quants.dequantize(np.frombuffer(data, dtype=np.uint8), T[typ]).astype(np.float32, copy=False)
    assert_same_floats(ours, ref.reshape(-1), f"dequantize {typ} vs gguf-py")


@pytest.mark.parametrize("typ", BLOCK_TYPES)
def test_dequantize_matches_ggml(tool, ggml, tmp_path, typ):
    rng = np.random.default_rng(2000 + ALL_TYPES.index(typ))
    data = random_blocks(typ, rng)
    block_elems, _ = GGML_QUANT_SIZES[T[typ]]
    n = N_BLOCKS * block_elems
    ours = np.frombuffer(run_tool(tool, tmp_path, "dequant", typ, data), dtype=np.float32)
    ref = np.zeros(n, dtype=np.float32)
    fn = getattr(ggml, f"dequantize_row_{typ.lower().replace('_k', '_K')}")
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    src = ctypes.create_string_buffer(data, len(data))
    fn(src, ref.ctypes.data, n)
    assert_same_floats(ours, ref, f"dequantize {typ} vs ggml")


# ------------------------------------------------------------------ quantize

@pytest.mark.parametrize("typ", GGUF_PY_QUANTIZE)
def test_quantize_matches_gguf_py(tool, tmp_path, typ):
    rng = np.random.default_rng(3000 + ALL_TYPES.index(typ))
    x = sample_rows(rng, 8192)
    if typ in ("F16", "BF16"):  # conversion edge cases (NaN payloads are compared as "is NaN")
        x = np.concatenate([x, np.array([np.inf, -np.inf, 65504, 65519.99, 65520, 1e-8, -6e-8, 2.98e-8,
                                         3e38, -0.0, 1.0 + 2**-11, 1.0 + 3 * 2**-11], dtype=np.float32)])
        x = np.concatenate([x, rng.integers(0, 1 << 32, 4096, dtype=np.uint32).view(np.float32)])
        x = x[~np.isnan(x)]
    ours = run_tool(tool, tmp_path, "quant", typ, x.tobytes())
    with np.errstate(over="ignore"):  # F16: values past 65504 become inf, as intended
        ref = quants.quantize(x, T[typ])
    assert ours == ref.tobytes(), f"quantize {typ}: output differs from gguf-py"


@pytest.mark.parametrize("typ", BLOCK_TYPES)
def test_quantize_matches_ggml_ref(tool, ggml, tmp_path, typ):
    rng = np.random.default_rng(4000 + ALL_TYPES.index(typ))
    x = sample_rows(rng, 8192)
    block_elems, block_bytes = GGML_QUANT_SIZES[T[typ]]
    ours = run_tool(tool, tmp_path, "quant", typ, x.tobytes())
    ref = ctypes.create_string_buffer(x.size // block_elems * block_bytes)  # zeroed
    fn = getattr(ggml, f"quantize_row_{typ.lower().replace('_k', '_K')}_ref")
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    fn(x.ctypes.data, ref, x.size)
    ref = ref.raw
    assert len(ours) == len(ref)
    if ours != ref:
        a = np.frombuffer(ours, np.uint8).reshape(-1, block_bytes)
        b = np.frombuffer(ref, np.uint8).reshape(-1, block_bytes)
        bad = np.flatnonzero((a != b).any(axis=1))
        pytest.fail(f"quantize {typ}: {bad.size} of {a.shape[0]} blocks differ from ggml, first block {bad[0]}")


def test_quantize_f16_nan_stays_nan(tool, tmp_path):
    x = np.array([np.nan, -np.nan] * 16, dtype=np.float32)
    for typ, dt in (("F16", np.float16), ("BF16", None)):
        out = np.frombuffer(run_tool(tool, tmp_path, "quant", typ, x.tobytes()), dtype=np.uint16)
        back = out.astype(np.uint32) << 16 if dt is None else out.view(np.float16).astype(np.float32)
        vals = back.view(np.float32) if dt is None else back
        assert np.isnan(vals).all(), typ


def test_tool_rejects_partial_blocks(tool, tmp_path):
    x = np.zeros(33, dtype=np.float32)
    src, dst = tmp_path / "x.f32", tmp_path / "x.bin"
    src.write_bytes(x.tobytes())
    r = subprocess.run([str(tool), "quant", "Q4_0", str(src), str(dst)], capture_output=True, text=True)
    assert r.returncode != 0 and "block" in r.stderr and r.stderr.count("\n") == 1
    src.write_bytes(b"\0" * 35)  # not a whole Q8_0 block (34 bytes)
    r = subprocess.run([str(tool), "dequant", "Q8_0", str(src), str(dst)], capture_output=True, text=True)
    assert r.returncode != 0 and "block" in r.stderr


# ------------------------------------------------------- real model tensors

@pytest.mark.parametrize("model", ["velo-code-40m.Q8_0.gguf", "SmolLM2-135M-Instruct.Q4_1.gguf",
                                   "gemma-3-270m-q4_k_m.gguf"])
def test_dequantize_real_tensors_match_gguf_py(tool, tmp_path, model):
    """Up to 3 tensors of each type in the file, first 64 rows each, vs gguf-py."""
    from gguf import GGUFReader
    from conftest import model_path

    reader = GGUFReader(model_path(model))
    seen: dict[str, int] = {}
    for t in reader.tensors:
        typ = t.tensor_type.name
        if seen.get(typ, 0) >= 3:
            continue
        seen[typ] = seen.get(typ, 0) + 1
        raw = np.ascontiguousarray(t.data.reshape(-1, t.data.shape[-1])[:64]).view(np.uint8)
        ours = np.frombuffer(run_tool(tool, tmp_path, "dequant", typ, raw.tobytes()), dtype=np.float32)
        ref = quants.dequantize(raw, T[typ]).astype(np.float32, copy=False).reshape(-1)
        assert_same_floats(ours, ref, f"{model} {t.name} ({typ})")
    assert len(seen) >= 2, seen
