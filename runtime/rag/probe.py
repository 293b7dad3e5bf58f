"""The model's own judgement of coverage: "Do the sources answer the question?", yes or no.

The probe prompt is the answer prompt's messages with one sentence added to the end of the last
user message, so the two share everything up to the sources and the question. The model reads
the probe, writes one or two tokens (greedy), and the answer that follows reuses the KV cache up
to the end of the shared prefix: the engine rolls the cache back to it (llama.cpp's
``llama_memory_seq_rm``) and decodes only the answer's own tail. The probe's cost is its tail
(about 20 tokens) plus one generated token; what it adds depends on the model (measured per
model in ``benchmarks/bench_answers.py``; see docs/asking.md).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Sequence

from runtime.config import GenerateOptions

if TYPE_CHECKING:
    from runtime.llm.chat_view import ChatModel
    from runtime.llm.model import Model

PROBE_QUESTION = "Do the sources above answer the question? Reply with yes or no only."
_PROBE_OPTIONS = GenerateOptions(max_tokens=2, temperature=0.0)
_YES = re.compile(r"^\W*(yes|yeah|yep|true|correct)\b", re.I)
_NO = re.compile(r"^\W*(no|not|false|none)\b", re.I)


@dataclass(frozen=True)
class ProbeResult:
    """What the model said (``verdict`` True for yes, False for no, None when unclear), and
    its cost in prompt tokens decoded and seconds."""

    verdict: bool | None
    said: str
    prompt_tokens: int
    cached_tokens: int
    seconds: float


def probe_messages(messages: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """The answer prompt's messages with the probe question after the last user message."""
    probed = [dict(m) for m in messages]
    probed[-1]["content"] = probed[-1]["content"].rstrip() + "\n" + PROBE_QUESTION
    return probed


def ask_model(model: Model, view: ChatModel, messages: Sequence[Mapping[str, str]]) -> ProbeResult:
    """Run the probe on ``model`` (prompt rendered through ``view``, the model's chat layout)."""
    started = time.perf_counter()
    prompt = view.chat_prompt(probe_messages(messages), add_generation_prompt=True)
    completion = model.complete(prompt, _PROBE_OPTIONS)
    said = completion.text.strip()
    verdict = True if _YES.match(said) else False if _NO.match(said) else None
    return ProbeResult(verdict, said, completion.prompt_tokens, completion.cached_tokens,
                       time.perf_counter() - started)
