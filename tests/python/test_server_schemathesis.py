"""schemathesis generates requests from docs/openapi.yaml: the server never answers 5xx."""
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, model_path
from server_util import serve


def test_no_server_errors_on_generated_requests(velollm_bin, tmp_path):
    st = Path(sys.executable).parent / "schemathesis"
    with serve(velollm_bin, model_path("velo-code-draft-12m.Q8_0.gguf"), "--ctx-size", 128, "--parallel", 2,
               tmp_path=tmp_path) as s:
        r = subprocess.run([str(st), "run", str(ROOT / "docs" / "openapi.yaml"), "--url", s.base,
                            "--checks", "not_a_server_error", "--max-examples", "25", "--seed", "1",
                            "--workers", "2", "--request-timeout", "60", "--phases", "examples,coverage,fuzzing"],
                           capture_output=True, text=True, timeout=900)
        print(r.stdout[-4000:])
        assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
        assert s.proc.poll() is None, "server died:\n" + s.log()
