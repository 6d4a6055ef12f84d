"""Deterministic tokenizer test corpus: bytes strings that stress every tokenizer path.

`corpus(seed)` returns a list of (name, bytes) covering source code, whitespace runs, digits,
CJK, Arabic, emoji, combining marks, control characters, special-token strings, very long
words, random Unicode and invalid UTF-8. Same seed, same corpus.
"""
import random

WORDS = ("the of and to in is you that it he was for on are as with his they I at be this have from or one "
         "had by word but not what all were we when your can said there use an each which she do how their "
         "if will up other about out many then them these so some her would make like him into time has look "
         "two more write go see number no way could people my than first water been call who oil its now find "
         "Hello World Python JSON HTTP URL API naïve café résumé Zürich São Paulo").split()
CODE = [
    "def {f}({a}, {b}=None):\n    \"\"\"Docstring.\"\"\"\n    if {a} is None:\n        return []\n    return [{a}[i] * 2 for i in range(len({a}))]\n",
    "#include <stdio.h>\nint {f}(int {a}) {{\n\tfor (int i = 0; i < {a}; ++i) printf(\"%d\\n\", i);\n\treturn 0;\n}}\n",
    "const {f} = async ({a}) => {{ const r = await fetch(`/api/${{{a}}}`); return r.json(); }};\n",
    "fn {f}(&self, {a}: &str) -> Result<Vec<u8>, Error> {{\n    let x = {a}.bytes().collect::<Vec<_>>();\n    Ok(x)\n}}\n",
    "SELECT {a}, COUNT(*) AS n FROM {f} WHERE {b} >= 42 GROUP BY {a} ORDER BY n DESC;\n",
    "<div class=\"{a}\"><span id='{b}'>{f} &amp; co</span></div>\n",
    "{{\"{a}\": [1, 2.5, -3e10, true, null], \"{b}\": {{\"k\": \"v\\u00e9\"}}}}\n",
    "    if ({a} != {b}) {{ {f}({a}); }} else {{ return -1; }}  // TODO: fix\r\n",
]
SPACES = [" ", "  ", "   ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2009", "\u200b", "\u2028", "\x0b", "\x0c", "\u0085"]
DIGITS = "0123456789"
UNICODE_DIGITS = "٠١٢٣٤٥٦٧٨٩۰۱۲०१२३০১২๐๑๒０１２３⁰¹²½⅓Ⅻ"
CJK = [(0x4E00, 0x9FFF), (0x3040, 0x309F), (0x30A0, 0x30FF), (0xAC00, 0xD7A3), (0x3400, 0x4DBF), (0x20000, 0x2A6DF)]
SCRIPTS = [(0x0600, 0x06FF), (0x0590, 0x05FF), (0x0900, 0x097F), (0x0E00, 0x0E7F), (0x0400, 0x04FF), (0x0370, 0x03FF),
           (0x10A0, 0x10FF), (0x0530, 0x058F)]
EMOJI = ["😀", "🎉", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "🇯🇵", "❤️", "🧑🏿‍🚀", "🏳️‍🌈", "✅", "🤖", "💩", "☕", "🫠", "🪿", "1️⃣"]
COMBINING = [chr(c) for c in range(0x0300, 0x036F)] + ["\u20dd", "\u0e49", "\u093f", "\u05b7"]
CONTROLS = [chr(c) for c in range(0, 32)] + ["\x7f", "\u0085", "\u200c", "\u200d", "\u200e", "\u200f", "\ufeff", "\u2060", "\ue000", "\ufffd"]
SPECIAL_STRINGS = ["<s>", "</s>", "<unk>", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<repo_name>", "<reponame>",
                   "<file_sep>", "<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", "<pad>", "<mask>", "<unused0>",
                   "<unused99>", "<b>", "</b>", "<table>", "[multimodal]", "<start_of_image>", "\n\n\n", "  ", "\t\t",
                   "<|im_end", "im_end|>", "<<s>>", "<s><s>", "<0x41>", "▁", "▁▁hello", "Ġ", "Ċ"]
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ll", "'D", "''", "'x"]


def _rand_cp(rng, lo, hi):
    return chr(rng.randint(lo, hi))


def _words(rng, n):
    out = []
    for _ in range(n):
        w = rng.choice(WORDS)
        if rng.random() < 0.1:
            w = w.upper()
        if rng.random() < 0.08:
            w += rng.choice(CONTRACTIONS)
        out.append(w)
        out.append(rng.choice([" ", " ", " ", " ", ", ", ". ", "\n", "  ", "! ", "? ", "; ", " - ", "... "]))
    return "".join(out)


def _llama_decodable(b: bytes) -> bool:
    """False when llama.cpp's UTF-8 decoder would produce a codepoint above U+10FFFF (it throws)."""
    i = 0
    while i < len(b):
        c = b[i]
        if c >= 0xF0 and c < 0xF8 and i + 3 < len(b) and all(0x80 <= x < 0xC0 for x in b[i + 1:i + 4]):
            cp = ((c & 7) << 18) | ((b[i + 1] & 0x3F) << 12) | ((b[i + 2] & 0x3F) << 6) | (b[i + 3] & 0x3F)
            if cp > 0x10FFFF:
                return False
            i += 4
        else:
            i += 1
    return True


def corpus(seed: int = 1234):
    rng = random.Random(seed)
    out = []

    def add(name, s):
        b = s.encode("utf-8", "surrogatepass") if isinstance(s, str) else s
        out.append((name, b))

    for s in ["", " ", "  ", "a", " a", "a ", "\n", " \n ", "Hello", " Hello", "Hello world", "hello   world",
              "€", "é", "\u00e9", "e\u0301", "🦙", "<s>", " <s>", "<s> ", "</s>x", "ab<|im_end|>cd"] + SPECIAL_STRINGS:
        add("fixed", s)
    for _ in range(600):
        add("prose", _words(rng, rng.randint(1, 60)))
    for _ in range(500):
        t = rng.choice(CODE).format(f=rng.choice(["foo", "bar_baz", "getX", "parse2", "_init"]),
                                    a=rng.choice(["x", "items", "arg0", "self"]), b=rng.choice(["y", "opts", "k"]))
        if rng.random() < 0.3:
            t = t.replace("    ", "\t")
        add("code", t * rng.randint(1, 3))
    for _ in range(400):
        add("space", "".join(rng.choice(SPACES) * rng.randint(1, 40) + rng.choice(["", "x", "word", "1", ".", "é"])
                             for _ in range(rng.randint(1, 8))))
    for _ in range(400):
        parts = []
        for _ in range(rng.randint(1, 8)):
            r = rng.random()
            if r < 0.5:
                parts.append("".join(rng.choice(DIGITS) for _ in range(rng.randint(1, 25))))
            elif r < 0.7:
                parts.append("".join(rng.choice(UNICODE_DIGITS) for _ in range(rng.randint(1, 6))))
            else:
                parts.append(rng.choice(["3.14159", "1,000,000", "-42", "0x1F", "1e-9", "v1.2.3", "2026-11-22", "12:30"]))
            parts.append(rng.choice([" ", "", "a", ".", ", ", "\n", "%", "$"]))
        add("digits", "".join(parts))
    for _ in range(400):
        lo, hi = rng.choice(CJK)
        add("cjk", "".join(_rand_cp(rng, lo, hi) for _ in range(rng.randint(1, 40))) + rng.choice(["", "。", "，", " ", "abc"]))
    for _ in range(400):
        lo, hi = rng.choice(SCRIPTS)
        add("script", " ".join("".join(_rand_cp(rng, lo, hi) for _ in range(rng.randint(1, 9)))
                               for _ in range(rng.randint(1, 10))))
    for _ in range(300):
        add("emoji", "".join(rng.choice(EMOJI) + rng.choice(["", " ", "x", "!", "\n"]) for _ in range(rng.randint(1, 12))))
    for _ in range(300):
        base = rng.choice(["a", "e", "Z", "ก", "ब", " ", "1", "ö", ""])
        add("combining", "".join(base + "".join(rng.choice(COMBINING) for _ in range(rng.randint(0, 6)))
                                 for _ in range(rng.randint(1, 10))))
    for _ in range(300):
        add("control", "".join(rng.choice(CONTROLS + ["a", " ", "b"]) for _ in range(rng.randint(1, 30))))
    for _ in range(600):
        parts = []
        for _ in range(rng.randint(1, 10)):
            parts.append(rng.choice(SPECIAL_STRINGS + [" ", "", "x", "Hello", "\n", " <", ">", "|"]))
        add("special", "".join(parts))
    for _ in range(100):
        c = rng.choice(["a", "z", "é", "字", " ", "\n", "0", "🦙", "-", "ab", "xyz", "<s>", "▁"])
        add("long", c * rng.randint(100, 3000))
    for _ in range(100):
        add("longword", "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ") for _ in range(rng.randint(200, 4000))))
    for _ in range(500):
        cps = []
        for _ in range(rng.randint(1, 30)):
            r = rng.random()
            if r < 0.6:
                cp = rng.randint(0, 0x10FFFF)
            elif r < 0.9:
                cp = rng.randint(0, 0x2FFFF)
            else:
                cp = rng.randint(0x80, 0x7FF)
            if 0xD800 <= cp <= 0xDFFF:
                cp = 0xFFFD
            cps.append(chr(cp))
        add("random_unicode", "".join(cps))
    n_bytes = 0
    while n_bytes < 300:
        b = bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 40)))
        if rng.random() < 0.5:  # mostly-valid text with a few broken bytes
            t = bytearray(_words(rng, 5).encode() + "é字🦙".encode())
            for _ in range(rng.randint(1, 3)):
                t.insert(rng.randint(0, len(t)), rng.randint(0x80, 0xFF))
            b = bytes(t)
        if _llama_decodable(b):
            add("invalid_utf8", b)
            n_bytes += 1
    return out


if __name__ == "__main__":
    c = corpus()
    print(len(c), "strings,", sum(len(b) for _, b in c), "bytes")
