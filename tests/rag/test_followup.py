"""Chat follow-ups are retrieved with the conversation's context, on rt's docs (real MiniLM, FTS5,
FAISS): a snapshot in tests/rag/docs_snapshot/, so editing docs/ does not move the passages."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.rag.followup import contextual_query, topic_terms

DOCS = Path(__file__).resolve().parent / "docs_snapshot"
FIRST = "What does --repack do?"
FOLLOW_UP = "And how much memory does it cost?"
# retrieval.md quotes these two questions word for word (it describes this very fix): left out,
# so that the test is about finding the repack passage in the rest of the docs.
QUOTING_PAGE = "retrieval.md"


def copy_docs(target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for page in DOCS.glob("*.md"):
        if page.name != QUOTING_PAGE:
            (target / page.name).write_text(page.read_text(encoding="utf-8"), encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def docs_index(tmp_path_factory: pytest.TempPathFactory, embedder):  # type: ignore[no-untyped-def]
    from runtime.index import Index

    folder = tmp_path_factory.mktemp("docs-index")
    with Index.open(folder, create=True, embedder=embedder) as index:
        index.add([copy_docs(tmp_path_factory.mktemp("docs"))])
    index = Index.open(folder)
    yield index
    index.close()


def _about_repacking(hit) -> bool:  # type: ignore[no-untyped-def]
    return Path(hit.path).name == "memory.md" and "repack" in hit.text.lower()


def test_the_subject_of_a_question_is_a_word_the_index_has_a_document_about(docs_index) -> None:  # type: ignore[no-untyped-def]
    assert topic_terms(FIRST, docs_index.store) == ["repack"]
    assert topic_terms("What does it do?", docs_index.store) == []


def test_a_follow_up_is_retrieved_with_the_earlier_questions_terms(docs_index) -> None:  # type: ignore[no-untyped-def]
    alone = docs_index.search(FOLLOW_UP, 3)
    assert not _about_repacking(alone[0])  # the bug: its own words find other memory notes
    query = contextual_query(FOLLOW_UP, [FIRST], docs_index.store)
    assert query == FOLLOW_UP + " repack"
    assert _about_repacking(docs_index.search(query, 3)[0])


def test_a_question_that_changes_the_subject_keeps_its_own_passages(docs_index) -> None:  # type: ignore[no-untyped-def]
    switch = "How do I convert a safetensors checkpoint to GGUF?"
    query = contextual_query(switch, [FIRST], docs_index.store)
    assert Path(docs_index.search(query, 3)[0].path).name == "converting.md"


@pytest.mark.slow
def test_chat_retrieves_the_follow_up_with_the_conversation(docs_index) -> None:  # type: ignore[no-untyped-def]
    """Through RAG.chat with the default model: the second turn retrieves the repack passage.

    Whether that passage then counts as covering the question is runtime.rag.coverage's call
    (it lacks the word "cost"), so the test looks at what the turn retrieved."""
    from runtime.config import GenerateOptions
    from runtime.rag.rag import RAG

    # the module's index, only read here (RAG.open opens it again)
    with RAG.open(index=docs_index.folder, options=GenerateOptions(max_tokens=16)) as rag:
        retrieved: list = []
        search = rag.index.search

        def recording_search(query, k=None, **kwargs):  # type: ignore[no-untyped-def]
            retrieved.append(search(query, k, **kwargs))
            return retrieved[-1]

        rag.index.search = recording_search  # type: ignore[method-assign]
        chat = rag.chat(answer_anyway=True)
        chat.ask(FIRST)
        chat.ask(FOLLOW_UP)
    assert len(retrieved) == 2
    assert _about_repacking(retrieved[0][0]) and _about_repacking(retrieved[1][0])
