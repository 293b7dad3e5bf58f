"""The model's yes/no coverage probe on the real SmolLM2: it reads the answer prompt's prefix,
and the answer that follows reuses that prefix from the KV cache (rolled back past the probe)."""

from __future__ import annotations

from pathlib import Path

from runtime.config import GenerateOptions, LoadOptions
from runtime.rag.probe import PROBE_QUESTION, ask_model, probe_messages
from runtime.rag.prompt import ANSWER_PREFIX, build_prompt
from runtime.rag.rag import RAG


def test_the_probe_shares_the_answer_prompt_up_to_its_own_question() -> None:
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "Question: q\nSources: ..."}]
    probed = probe_messages(messages)
    assert probed[0] == messages[0] and probed[1]["content"].startswith(messages[1]["content"])
    assert probed[1]["content"].endswith(PROBE_QUESTION) and messages[1]["content"].endswith("...")


def test_the_answer_after_the_probe_reuses_the_cached_sources(index_dir: Path, smollm2_path: Path) -> None:
    question = "How often must the Velomax chain be oiled?"
    with RAG.open(smollm2_path, index_dir, load=LoadOptions(n_ctx=2048)) as rag:
        built = build_prompt(rag.model, question, rag.retrieve(question), reserve=32,
                             answer_prefix=ANSWER_PREFIX)
        result = ask_model(rag.model, rag.model, built.messages)
        assert result.verdict in (True, False, None) and result.prompt_tokens > 100
        answer = rag.model.complete(built.text, GenerateOptions(max_tokens=8))
    # everything before the probe's own question came from the KV cache
    assert answer.cached_tokens > 0.8 * answer.prompt_tokens
    assert answer.prompt_tokens - answer.cached_tokens < 40
