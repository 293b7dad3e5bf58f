"""Prompt-lookup drafts: guess the next tokens by finding the last generated n-gram earlier in
the text (RAG answers copy names, numbers and phrases from their sources) and taking what
followed it. No draft model; the engine verifies a draft in one batch (see
:meth:`runtime.llm.llama_engine.LlamaEngine._generate`).
"""

from __future__ import annotations

from collections.abc import Sequence


def draft(history: Sequence[int], *, max_tokens: int, ngram: int) -> list[int]:
    """Up to ``max_tokens`` tokens that followed the latest earlier occurrence of the last
    ``ngram`` tokens of ``history`` (trying shorter n-grams down to 1); ``[]`` when none occurs."""
    end = len(history)
    if max_tokens <= 0 or end < 2:
        return []
    for n in range(min(ngram, end - 1), 0, -1):
        tail = list(history[end - n:])
        first = tail[0]
        # the latest match: start at end - n - 1 and walk back
        for start in range(end - n - 1, -1, -1):
            if history[start] == first and list(history[start:start + n]) == tail:
                follow = list(history[start + n:start + n + max_tokens])
                if follow:
                    return follow
    return []
