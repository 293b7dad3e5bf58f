"""The memory estimate against the buffer sizes the real llama.cpp logs when it creates a context.

The load runs in a child process (its native log goes to stderr, and nothing native runs in the
test process); it only creates the context, never decodes, and keeps use_extra_bufts off as
every llama.cpp load in rt must on this machine. The context params are runtime.llm.llama_engine's
(one sequence, logits for one output row, flash attention forced for a quantized cache).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.config import LoadOptions
from runtime.models.gguf_file import inspect_gguf
from runtime.models.memory import estimate_memory

pytest.importorskip("llama_cpp")

MiB = 1 << 20

LOAD = r"""
import sys
import llama_cpp.llama_cpp as L
path, n_ctx, n_batch, kv = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
L.llama_backend_init()
mp = L.llama_model_default_params()
mp.use_extra_bufts = False
model = L.llama_model_load_from_file(path.encode(), mp)
cp = L.llama_context_default_params()
cp.n_ctx = n_ctx
cp.n_batch = cp.n_ubatch = max(1, min(n_batch, n_ctx))
cp.n_seq_max = 1
cp.n_outputs_max = 1
cp.n_threads = cp.n_threads_batch = 1
cp.type_k = cp.type_v = {"f16": 1, "q8_0": 8}[kv]
if kv != "f16":
    cp.flash_attn_type = 1  # enabled, as runtime.llm.llama_engine does for a quantized V cache
cp.no_perf = True
ctx = L.llama_init_from_model(model, cp)
sys.exit(0 if ctx else 1)
"""


def logged_buffers(path: Path, n_ctx: int, n_batch: int, kv: str) -> dict[str, float]:
    proc = subprocess.run([sys.executable, "-c", LOAD, str(path), str(n_ctx), str(n_batch), kv],
                          check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    sizes = {"KV": 0.0, "compute": 0.0, "output": 0.0}
    for kind, mib in re.findall(r"CPU\s+(KV|compute|output) buffer size =\s+([\d.]+) MiB", proc.stderr):
        sizes[kind] += float(mib)
    return sizes


@pytest.mark.parametrize(("model", "n_ctx", "n_batch", "kv"), [
    ("smollm2", 4096, 512, "f16"),
    ("smollm2", 2048, 128, "q8_0"),
    ("smollm2", 1000, 64, "f16"),  # llama.cpp pads the context to 1024
    ("gemma", 4096, 512, "f16"),
    ("gemma", 8192, 512, "q8_0"),
])
def test_estimate_matches_llama_cpp(model: str, n_ctx: int, n_batch: int, kv: str,
                                    request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(f"{model}_path")
    logged = logged_buffers(path, n_ctx, n_batch, kv)
    est = estimate_memory(inspect_gguf(path), LoadOptions(n_ctx=n_ctx, n_batch=n_batch, kv_type=kv))
    assert est.kv_cache / MiB == pytest.approx(logged["KV"], abs=0.01)  # padded like llama.cpp
    # an upper bound (the log rounds to 0.01 MiB), but not a wasteful one
    compute = logged["compute"] + logged["output"]
    assert compute - 0.01 <= est.compute / MiB <= 1.5 * compute + 8, (est.compute / MiB, logged)
