"""Shared fixtures for the oracle and API tests (run by scripts/test.sh)."""
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED_MODELS = ROOT.parent / "shared" / "models"


def model_cache() -> Path:
    env = os.environ.get("VELO_MODEL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "velollm" / "models"


def model_path(name: str) -> Path:
    """A real test model by file name; fails (never skips) when it is missing."""
    for d in (model_cache(), SHARED_MODELS):
        if (d / name).exists():
            return d / name
    pytest.fail(f"test model {name} not found; run scripts/fetch_models.py")


@pytest.fixture(scope="session")
def velollm_bin() -> Path:
    p = Path(os.environ.get("VELO_BIN", ROOT / "build" / "velollm"))
    if not p.exists():
        pytest.fail(f"{p} not built; run scripts/install.sh")
    return p


@pytest.fixture(scope="session")
def tools_dir(velollm_bin) -> Path:
    """Where test-support executables (tests/tools/*.cpp -> tool_<name>) are built."""
    return Path(os.environ.get("VELO_TOOLS_DIR", velollm_bin.parent / "tests"))


MODELS = {
    "velo-code-40m": "velo-code-40m.Q8_0.gguf",
    "velo-code-draft-12m": "velo-code-draft-12m.Q8_0.gguf",
    "smollm2": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma3": "gemma-3-270m-q4_k_m.gguf",
}
