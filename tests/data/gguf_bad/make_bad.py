#!/usr/bin/env python3
"""Writes the malformed-GGUF corpus (one small file per class of defect) next to
this script, plus the valid baseline files, and copies all of them into the
fuzz seed corpus tests/fuzz/gguf/. Standard library only; rerun after edits:

    python3 tests/data/gguf_bad/make_bad.py

EXPECTED maps each bad file to the substring the reader's error must contain
(tests/gguf/bad_files_test.cpp reads this table from expected.txt).
"""
import shutil
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEEDS = HERE.parent.parent / "fuzz" / "gguf"

# GGUF value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
# ggml tensor types used here
T_F32, T_F16, T_Q8_0 = 0, 1, 8


def u32(x): return struct.pack("<I", x)
def u64(x): return struct.pack("<Q", x)
def gstr(b): return u64(len(b)) + b


def kv(key, vtype, payload):
    if isinstance(key, str):
        key = key.encode()
    return gstr(key) + u32(vtype) + payload


def kv_u32(key, x): return kv(key, U32, u32(x))
def kv_str(key, s): return kv(key, STR, gstr(s.encode() if isinstance(s, str) else s))


def arr(etype, items):
    return u32(etype) + u64(len(items)) + b"".join(items)


def tinfo(name, dims, ttype, offset):
    if isinstance(name, str):
        name = name.encode()
    return gstr(name) + u32(len(dims)) + b"".join(u64(d) for d in dims) + u32(ttype) + u64(offset)


def gguf(kvs=(), tensors=(), data=b"", version=3, magic=b"GGUF", n_kv=None, n_tensors=None,
         align=32, pad=True):
    out = magic + u32(version)
    out += u64(len(tensors) if n_tensors is None else n_tensors)
    out += u64(len(kvs) if n_kv is None else n_kv)
    out += b"".join(kvs) + b"".join(tensors)
    if pad:
        out += b"\0" * (-len(out) % align)
    return out + data


ARCH = kv_str("general.architecture", "llama")
F32x8 = struct.pack("<8f", *range(8))            # 32 bytes: one F32 tensor of 8 elements
T_A = tinfo("a", [8], T_F32, 0)
TOKENS_OK = kv("tokenizer.ggml.tokens", ARR, arr(STR, [gstr(b"<s>"), gstr("\u2581hi".encode())]))


def nested(depth):
    """An array nested `depth` levels deep, innermost holds one UINT8."""
    v = arr(U8, [b"\x07"])
    for _ in range(depth - 1):
        v = arr(ARR, [v])
    return v


GOOD = {
    "good_minimal.gguf": gguf([ARCH], [T_A], F32x8),
    "good_no_tensors.gguf": gguf([ARCH, kv_u32("llama.block_count", 2)]),
    "good_all_types.gguf": gguf([
        ARCH, kv("u8", U8, b"\x01"), kv("i8", I8, b"\xff"), kv("u16", U16, b"\1\0"),
        kv("i16", I16, b"\xfe\xff"), kv_u32("u32", 5), kv("i32", I32, struct.pack("<i", -5)),
        kv("f32", F32, struct.pack("<f", 0.5)), kv("b", BOOL, b"\1"), kv_str("s", "x"),
        kv("u64", U64, u64(9)), kv("i64", I64, struct.pack("<q", -9)), kv("f64", F64, struct.pack("<d", 2.5)),
        kv("nest", ARR, nested(3)), TOKENS_OK,
        kv("general.alignment", U32, u32(64))], [T_A, tinfo("b", [32, 2], T_Q8_0, 64)],
        F32x8 + b"\0" * 32 + b"\x01" * 68, align=64),
    "good_v2.gguf": gguf([ARCH], [T_A], F32x8, version=2),
}

# name -> (bytes, substring the error must contain)
BAD = {
    "bad_magic.gguf": (gguf([ARCH], magic=b"GGML"), "bad magic"),
    "short_file.gguf": (b"GGU", "not a GGUF file"),
    "version1.gguf": (gguf([ARCH], version=1), "version 1 is obsolete"),
    "version99.gguf": (gguf([ARCH], version=99), "unsupported GGUF version 99"),
    "big_endian.gguf": (gguf([ARCH], version=0x03000000), "big-endian"),
    "truncated_header.gguf": (b"GGUF" + u32(3) + u64(0), "truncated file"),
    "kv_count_too_large.gguf": (gguf([ARCH], n_kv=1 << 40), "metadata count 1099511627776 is larger"),
    "kv_count_overflow.gguf": (gguf([ARCH], n_kv=(1 << 64) - 1), "metadata count"),
    "tensor_count_too_large.gguf": (gguf([ARCH], n_tensors=1 << 20), "tensor count 1048576 is larger"),
    "tensor_count_overflow.gguf": (gguf([ARCH], n_tensors=1 << 62), "tensor count"),
    "key_length_past_eof.gguf": (gguf([u64(1 << 50) + b"abc" * 5], pad=False),
                               "metadata key #0 length 1125899906842624 at offset 24 runs past the end of the file"),
    "string_past_eof.gguf": (gguf([kv("s", STR, u64(1000) + b"short")], pad=False),
                             "string value of key 's' length 1000"),
    "empty_key.gguf": (gguf([kv(b"", U32, u32(1))]), "is empty"),
    "bad_utf8_key.gguf": (gguf([kv_u32(b"general.\xc3\x28", 1)]), "is not valid UTF-8"),
    "duplicate_key_newline.gguf": (gguf([kv_u32("a\nb", 1), kv_u32("a\nb", 2)]), "duplicate metadata key 'a\\x0ab'"),
    "duplicate_key.gguf": (gguf([ARCH, kv_u32("x", 1), kv_u32("x", 2)]), "duplicate metadata key 'x'"),
    "unknown_value_type.gguf": (gguf([kv("x", 13, u32(1))]), "unknown value type 13"),
    "unknown_array_type.gguf": (gguf([kv("x", ARR, u32(99) + u64(0))]), "array of unknown value type 99"),
    "invalid_bool.gguf": (gguf([kv("x", BOOL, b"\x02")]), "invalid bool value 2"),
    "truncated_value.gguf": (gguf([kv("x", U64, b"\1\2\3")], pad=False), "truncated file"),
    "array_count_too_large.gguf": (gguf([kv("x", ARR, u32(U32) + u64(1 << 40) + u32(1))]),
                                   "array count 1099511627776 of key 'x'"),
    "array_count_overflow.gguf": (gguf([kv("x", ARR, u32(U64) + u64(1 << 62) + u64(1))]),
                                  "array count 4611686018427387904 of key 'x'"),
    "nested_array_count.gguf": (gguf([kv("x", ARR, u32(ARR) + u64(1) + u32(U8) + u64(1 << 33) + b"\0" * 8)]),
                                "array count 8589934592 of key 'x'"),
    "nested_array_strings.gguf": (gguf([kv("x", ARR, u32(ARR) + u64(1) + u32(STR) + u64(2) + gstr(b"a"))], pad=False),
                                  "array count 2 of key 'x'"),
    "nested_too_deep.gguf": (gguf([kv("x", ARR, nested(9))]), "nests arrays deeper than 8 levels"),
    "bad_utf8_token.gguf": (gguf([kv("tokenizer.ggml.tokens", ARR, arr(STR, [gstr(b"ok"), gstr(b"ed\xed\xa0\x80")]))]),
                            "string 1 of 'tokenizer.ggml.tokens' is not valid UTF-8: 'ed\\xed\\xa0\\x80'"),
    "bad_utf8_merge.gguf": (gguf([kv("tokenizer.ggml.merges", ARR, arr(STR, [gstr(b"a b"), gstr(b"\xc0\xaf b")]))]),
                            "string 1 of 'tokenizer.ggml.merges' is not valid UTF-8"),
    "alignment_zero.gguf": (gguf([kv_u32("general.alignment", 0)]), "general.alignment is 0, must be a power of two"),
    "alignment_not_pow2.gguf": (gguf([kv_u32("general.alignment", 48)]), "general.alignment is 48, must be a power of two"),
    "alignment_absurd.gguf": (gguf([kv_u32("general.alignment", 1 << 30)]), "general.alignment 1073741824 is absurdly large"),
    "alignment_wrong_type.gguf": (gguf([kv_str("general.alignment", "32")]),
                                  "key 'general.alignment' is STRING, expected an integer"),
    "tensor_n_dims_5.gguf": (gguf([ARCH], [tinfo("a", [1, 1, 1, 1, 8], T_F32, 0)], F32x8), "tensor 'a' has 5 dimensions"),
    "tensor_n_dims_0.gguf": (gguf([ARCH], [tinfo("a", [], T_F32, 0)], F32x8), "tensor 'a' has 0 dimensions"),
    "tensor_dim_zero.gguf": (gguf([ARCH], [tinfo("a", [8, 0], T_F32, 0)], F32x8), "tensor 'a' dimension 1 is zero"),
    "tensor_dim_huge.gguf": (gguf([ARCH], [tinfo("a", [1 << 63], T_F32, 0)], F32x8), "tensor 'a' dimension 0 is too large"),
    "tensor_dims_overflow.gguf": (gguf([ARCH], [tinfo("a", [1 << 32, 1 << 32, 1 << 32], T_F32, 0)], F32x8),
                                  "tensor 'a' dimension product overflows"),
    "tensor_bytes_overflow.gguf": (gguf([ARCH], [tinfo("a", [1 << 31, 1 << 31], T_F32, 0)], F32x8),
                                   "tensor 'a' byte size overflows"),
    "tensor_unknown_type.gguf": (gguf([ARCH], [tinfo("a", [8], 100, 0)], F32x8), "tensor 'a' has unknown tensor type 100"),
    "tensor_retired_type.gguf": (gguf([ARCH], [tinfo("a", [8], 4, 0)], F32x8), "tensor 'a' has unknown tensor type 4"),
    "tensor_row_not_blocks.gguf": (gguf([ARCH], [tinfo("a", [31], T_Q8_0, 0)], b"\0" * 64),
                                   "row length 31 is not a multiple of the Q8_0 block size 32"),
    "tensor_name_bad_utf8.gguf": (gguf([ARCH], [tinfo(b"w\xff", [8], T_F32, 0)], F32x8), "name 'w\\xff' is not valid UTF-8"),
    "tensor_name_empty.gguf": (gguf([ARCH], [tinfo(b"", [8], T_F32, 0)], F32x8), "has an empty name"),
    "tensor_name_too_long.gguf": (gguf([ARCH], [tinfo("n" * 65, [8], T_F32, 0)], F32x8), "name is 65 bytes long (limit 64)"),
    "tensor_name_past_eof.gguf": (gguf([ARCH], [u64(1 << 40) + b"x" * 40], n_tensors=1, pad=False),
                              "tensor #0 name length 1099511627776"),
    "duplicate_tensor.gguf": (gguf([ARCH], [T_A, tinfo("a", [8], T_F32, 32)], F32x8 * 2), "duplicate tensor name 'a'"),
    "tensor_unaligned.gguf": (gguf([ARCH], [tinfo("a", [8], T_F32, 4)], F32x8 * 2),
                              "tensor 'a' offset 4 is not a multiple of the alignment 32"),
    "tensor_past_eof.gguf": (gguf([ARCH], [tinfo("a", [16], T_F32, 0)], F32x8), "tensor 'a' data (offset 0, 64 bytes) runs past the end"),
    "tensor_offset_past_eof.gguf": (gguf([ARCH], [tinfo("a", [8], T_F32, 1 << 40)], F32x8), "runs past the end of the file"),
    "tensor_offset_overflow.gguf": (gguf([ARCH], [tinfo("a", [8], T_F32, (1 << 64) - 32)], F32x8),
                                    "runs past the end of the file"),
    "tensor_overlap.gguf": (gguf([ARCH], [tinfo("a", [16], T_F32, 0), tinfo("b", [8], T_F32, 32)], F32x8 * 2),
                            "data overlaps tensor 'a'"),
    "no_data_section.gguf": (gguf([ARCH], [T_A], pad=False), "tensor data section starts at"),
    "truncated_tensor_info.gguf": (gguf([ARCH], [tinfo("a", [8, 1, 1, 1], T_F32, 0)[:-3]], pad=False),
                                   "truncated file: tensor 'a' offset"),
}


def main():
    SEEDS.mkdir(parents=True, exist_ok=True)
    for old in HERE.glob("*.gguf"):
        old.unlink()
    lines = []
    for name, (data, expect) in sorted(BAD.items()):
        (HERE / name).write_bytes(data)
        lines.append(f"{name}\t{expect}")
    (HERE / "expected.txt").write_text(
        "# file<TAB>substring of the reader's error (generated by make_bad.py)\n" + "\n".join(lines) + "\n")
    for name, data in GOOD.items():
        (HERE / name).write_bytes(data)
    for f in HERE.glob("*.gguf"):
        shutil.copyfile(f, SEEDS / f.name)
    print(f"{len(BAD)} bad + {len(GOOD)} good files in {HERE}; seeds in {SEEDS}")


if __name__ == "__main__":
    main()
