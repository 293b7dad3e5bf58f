"""The model's own judgement of coverage: "Do the sources answer the question?", yes or no.

The probe prompt is the answer prompt's messages with one sentence added to the end of the last
user message, so the two share everything up to the end of the sources and the question. The
engine decodes the probe prompt (reusing whatever of it the KV cache holds), reads P(yes)
against P(no) from the next-token logits (:mod:`runtime.llm.yes_no`; nothing is generated),
and removes the probe's own tokens from the KV cache, so the answer that follows decodes only
its tail after the shared prefix: the prompt is processed once. What the probe costs and adds
per model is measured by ``benchmarks/bench_answers.py --probe`` (docs/asking.md).

:func:`judge` runs it only where :func:`runtime.rag.coverage.needs_probe` says it could change
the decision, and adds ``model_yes`` (P(yes)) and ``probe_seconds`` to the coverage signals. A
model whose engine cannot read logits (a remote server) has no probe: the signals then say
``"probe": "unavailable ..."`` and the decision stands on the other signals.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Mapping, Sequence

from runtime.llm.types import Prompt
from runtime.llm.yes_no import YesNo, YesNoReader
from runtime.rag.config import CoverageOptions
from runtime.rag.coverage import Coverage, decide

if TYPE_CHECKING:
    from runtime.llm.types import ChatModel
    from runtime.rag.prompt import BuiltPrompt

PROBE_QUESTION = "Do the sources above answer the question? Reply with yes or no only."
UNAVAILABLE = "unavailable: this model's engine does not expose next-token logits"


def probe_messages(messages: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """The answer prompt's messages with the probe question after the last user message."""
    probed = [dict(m) for m in messages]
    probed[-1]["content"] = probed[-1]["content"].rstrip() + "\n" + PROBE_QUESTION
    return probed


def split_probe(view: ChatModel, built: BuiltPrompt) -> tuple[str, str]:
    """The probe prompt for ``built``, cut where it leaves the answer prompt: ``(shared, probe)``.

    ``shared`` is a prefix of ``built.text`` (the sources and the question), ``probe`` the
    probe question and the start of the model's reply, rendered through ``view``."""
    text = view.render(Prompt(probe_messages(built.messages)))
    shared = len(os.path.commonprefix([text, built.text]))
    return text[:shared], text[shared:]


def ask_model(model: object, view: ChatModel, built: BuiltPrompt) -> YesNo | None:
    """The model's P(yes) for ``built``'s sources and question (``None`` when ``model`` cannot
    read logits); its KV cache then holds the shared prefix of ``built.text``."""
    if not isinstance(model, YesNoReader):
        return None
    shared, probe = split_probe(view, built)
    return model.yes_no(shared, probe)


def judge(model: object, view: ChatModel, built: BuiltPrompt, coverage: Coverage,
          options: CoverageOptions = CoverageOptions()) -> Coverage:
    """``coverage`` decided again with the model's P(yes) among its signals."""
    signals = dict(coverage.signals)
    result = ask_model(model, view, built)
    if result is None:
        signals["probe"] = UNAVAILABLE
        return Coverage(coverage.covered, coverage.reason, signals)
    signals["model_yes"] = round(result.p_yes, 4)
    signals["probe_seconds"] = round(result.seconds, 4)
    signals["probe_tokens"] = result.prompt_tokens - result.cached_tokens
    return decide(signals, options)
