"""The model's code and the generic process plumbing point one way (issue 22 §1): ``process/``
launches and watches children and knows nothing of models, the model's own child lives in
``llm/``, and ``llm/`` and ``index/`` meet only through the core (the HTTP client), never each
other. Read from the import statements, lazy and ``TYPE_CHECKING`` ones included."""

from __future__ import annotations

from functools import lru_cache

from tests import test_import_graph

import_graph = lru_cache(maxsize=1)(test_import_graph.import_graph)  # read once for the three tests


def _edges(source: str, target: str) -> list[str]:
    return sorted(f"{a} -> {b}" for a, imported in import_graph().items() if a.startswith(source + ".")
                  for b in imported if b == target or b.startswith(target + "."))


def test_process_plumbing_imports_nothing_of_the_model() -> None:
    assert _edges("runtime.process", "runtime.llm") == []
    assert "runtime.llm.worker" in import_graph()["runtime.llm.model"]


def test_the_model_and_the_index_do_not_import_each_other() -> None:
    assert _edges("runtime.llm", "runtime.index") == []
    assert _edges("runtime.index", "runtime.llm") == []
    graph = import_graph()
    assert "runtime.http_client" in graph["runtime.llm.remote"]
    assert "runtime.http_client" in graph["runtime.index.embedders.remote"]


def test_the_endpoints_object_lives_above_both() -> None:
    graph = import_graph()
    assert {"runtime.llm.remote", "runtime.index.embedders.remote"} <= graph["runtime.rag.endpoints"]
    assert _edges("runtime.llm", "runtime.rag") == []
