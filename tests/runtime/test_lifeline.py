"""A killed ``rt ask`` (or any parent of a Model) takes its model process with it, on every platform.

The model process is busy inside llama.cpp with a long prompt when its parent dies: it cannot
notice the closed pipe until the prompt is done (minutes for a long prompt on a 7B model), so
only its lifeline thread (runtime/process/lifeline.py) ends it in time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# The parent of a model process, printing its pid once the model is inside the long prompt
# (Model.stream returns when the model process has started on it).
_PARENT = """
import sys
from runtime.config import GenerateOptions, LoadOptions
from runtime.llm.model import Model

model = Model(None, LoadOptions(n_ctx=8192, threads=1))
stream = model.stream("word " * 7000, GenerateOptions(max_tokens=4))
print(model.pid, flush=True)
for _ in stream:
    pass
"""


@pytest.mark.parametrize("how", ["kill", "terminate"])
def test_killing_the_parent_mid_prompt_ends_its_model_process_within_seconds(how: str) -> None:
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert not _gone(child)
    finally:
        getattr(parent, how)()  # SIGKILL / SIGTERM; TerminateProcess on Windows
        parent.wait()
    killed = time.monotonic()
    while not _gone(child):
        assert time.monotonic() - killed < 5, "the model process outlived its parent by 5 s"
        time.sleep(0.05)


def test_a_model_process_started_by_hand_has_no_lifeline_to_watch() -> None:
    # RT_PARENT_PID unset (debugging the child by hand): watch_parent() must not end it
    done = subprocess.run(
        [sys.executable, "-c", "from runtime.process.lifeline import watch_parent; import time; "
         "watch_parent(); time.sleep(0.5); print('alive')"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k != "RT_PARENT_PID"},
    )
    assert done.stdout.strip() == "alive"
