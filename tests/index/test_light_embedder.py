"""The numpy embedder reproduces sentence-transformers' vectors, and declines what it cannot."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from runtime.index.embedders.factory import query_embedder
from runtime.index.embedders.light import Declined, LightEmbedder

TEXTS = [
    "when is the rent due?",
    "The boiler is serviced every October; the engineer's number is on the fridge.",
    "Ünïcödé façade — naïve café, Ελληνικά, 日本語のテキスト, emoji 🙂 and a tab\there",
    "",
    "   \n\t ",
    "?",
    "word " * 700,  # far past 256 tokens: truncated as sentence-transformers truncates
    "A sentence that repeats itself. " * 60,
    "x" * 3000,  # one long unbroken word
]


@pytest.fixture(scope="module")
def light() -> LightEmbedder:
    return LightEmbedder()


def assert_same_vectors(mine: np.ndarray, theirs: np.ndarray) -> None:
    assert mine.shape == theirs.shape and mine.dtype == np.float32
    cosines = (mine * theirs).sum(axis=1) / (np.linalg.norm(mine, axis=1) * np.linalg.norm(theirs, axis=1))
    assert cosines.min() >= 0.9999, cosines
    assert np.abs(mine - theirs).max() < 1e-4


def test_vectors_match_sentence_transformers(light: LightEmbedder, embedder) -> None:  # type: ignore[no-untyped-def]
    assert (light.name, light.dimension, light.max_tokens) == (embedder.name, embedder.dimension, embedder.max_tokens)
    assert_same_vectors(light.embed(TEXTS), embedder.embed(TEXTS))
    assert_same_vectors(np.stack([light.embed_query(t) for t in TEXTS[:3]]),
                        np.stack([embedder.embed_query(t) for t in TEXTS[:3]]))
    assert np.allclose(np.linalg.norm(light.embed(TEXTS), axis=1), 1.0, atol=1e-5)


def test_a_batch_gives_each_text_the_vector_it_gets_alone(light: LightEmbedder) -> None:
    batch = light.embed(TEXTS)
    alone = np.stack([light.embed([text])[0] for text in TEXTS])
    assert np.abs(batch - alone).max() < 1e-5  # padding is masked out
    assert light.embed([]).shape == (0, 384)


def test_token_offsets_are_the_same(light: LightEmbedder, embedder) -> None:  # type: ignore[no-untyped-def]
    for text in TEXTS:
        assert light.token_offsets(text) == embedder.token_offsets(text)


def copy_model(source: Path, target: Path) -> Path:
    """The model folder copied (its weights hard-linked where the file system allows)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("model.safetensors"))
    try:
        os.link(source / "model.safetensors", target / "model.safetensors")
    except OSError:
        shutil.copy2(source / "model.safetensors", target / "model.safetensors")
    return target


def edit_json(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(changes)
    path.write_text(json.dumps(data), encoding="utf-8")


def test_a_bert_shaped_like_minilm_with_cls_pooling_and_tanh_gelu(minilm_path: Path, tmp_path: Path) -> None:
    from runtime.index.embedders.sentence_transformers import SentenceTransformerEmbedder

    folder = copy_model(minilm_path, tmp_path / "variant")
    edit_json(folder / "1_Pooling" / "config.json", pooling_mode_cls_token=True, pooling_mode_mean_tokens=False)
    edit_json(folder / "config.json", hidden_act="gelu_new")
    edit_json(folder / "sentence_bert_config.json", max_seq_length=64)
    light, torch = LightEmbedder(str(folder)), SentenceTransformerEmbedder(str(folder))
    assert light.name == torch.name == str(folder.resolve()) and light.max_tokens == torch.max_tokens == 64
    assert_same_vectors(light.embed(TEXTS), torch.embed(TEXTS))


def _dense(folder: Path) -> None:
    modules = json.loads((folder / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (folder / "modules.json").write_text(json.dumps(modules))


UNDERSTOOD_NOT = {
    "a Dense layer": _dense,
    "prompts": lambda f: (f / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": {"query": "query: ", "document": ""}})),
    "another architecture": lambda f: edit_json(f / "config.json", model_type="roberta",
                                                architectures=["RobertaModel"]),
    "custom code": lambda f: edit_json(f / "config.json", auto_map={"AutoModel": "modeling.Custom"}),
    "another activation": lambda f: edit_json(f / "config.json", hidden_act="silu"),
    "relative positions": lambda f: edit_json(f / "config.json", position_embedding_type="relative_key"),
    "max pooling": lambda f: edit_json(f / "1_Pooling" / "config.json", pooling_mode_max_tokens=True),
    "an unknown setting": lambda f: edit_json(f / "sentence_bert_config.json", model_args={"x": 1}),
    "a lowercasing mismatch": lambda f: edit_json(f / "tokenizer_config.json", do_lower_case=False),
    "no tokenizer.json": lambda f: (f / "tokenizer.json").unlink(),
    "no model.safetensors": lambda f: (f / "model.safetensors").unlink(),
    "no modules.json": lambda f: (f / "modules.json").unlink(),
}


@pytest.mark.parametrize("change", UNDERSTOOD_NOT, ids=list(UNDERSTOOD_NOT))
def test_it_declines_a_folder_it_does_not_reproduce(change: str, minilm_path: Path, tmp_path: Path) -> None:
    folder = copy_model(minilm_path, tmp_path / "model")
    UNDERSTOOD_NOT[change](folder)
    with pytest.raises(Declined):
        LightEmbedder(str(folder))


def test_a_folder_it_declines_is_loaded_by_sentence_transformers(minilm_path: Path, tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    from runtime.index.embedders.sentence_transformers import SentenceTransformerEmbedder

    folder = copy_model(minilm_path, tmp_path / "prompted")
    UNDERSTOOD_NOT["prompts"](folder)
    with caplog.at_level(logging.DEBUG, logger="runtime.index.embedders.factory"):
        loaded = query_embedder(str(folder))
    assert isinstance(loaded, SentenceTransformerEmbedder)
    assert [r.message for r in caplog.records if "declined" in r.message] == [
        f"numpy embedder declined {folder.resolve()} (the model has prompts): loading sentence-transformers"]
    assert loaded.embed_query("rent").shape == (384,)


def test_search_uses_it_and_indexing_keeps_sentence_transformers(corpus_index: Path) -> None:
    from runtime.index import Index, IndexOptions
    from runtime.index.embedders.sentence_transformers import SentenceTransformerEmbedder

    with Index.open(corpus_index) as index:
        assert isinstance(index.embedder, LightEmbedder)
        assert isinstance(index.writing_embedder, SentenceTransformerEmbedder)
        assert index.embedder is index.writing_embedder  # loaded once, used for both from then on
    with Index.open(corpus_index, options=IndexOptions(light_embedder=False)) as index:
        assert isinstance(index.embedder, SentenceTransformerEmbedder)  # today's path, on request
