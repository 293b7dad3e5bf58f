"""--rerank: a sentence-transformers CrossEncoder reorders the first hits (a tiny BERT made here, real index)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from runtime.cli import cli
from tests.index.corpus import QUESTIONS


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path) -> Path:
    """A 2-layer BERT with one output (a CrossEncoder), random weights, vocabulary from the corpus."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast  # type: ignore[attr-defined]

    folder = tmp_path_factory.mktemp("tiny-cross-encoder")
    words = sorted({w.lower() for f in corpus_dir.rglob("*") if f.is_file() and f.suffix != ".pdf"
                    for w in re.findall(r"\w+", f.read_text(errors="ignore"))})[:2000]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, num_labels=1)  # type: ignore[call-arg]
    BertForSequenceClassification(config).save_pretrained(folder, safe_serialization=True)
    return folder


def test_the_reranker_orders_the_first_hits_by_its_own_scores(corpus_index: Path, tiny_cross_encoder: Path) -> None:
    from sentence_transformers import CrossEncoder

    from runtime.index import Index
    from runtime.index.rerank import CrossEncoderReranker

    question = QUESTIONS[0][0]
    with Index.open(corpus_index) as index:
        first_stage = index.search(question, index.options.rerank_candidates)
        index.reranker = CrossEncoderReranker(tiny_cross_encoder)
        reranked = index.search(question, 3)
    assert len(reranked) == 3
    expected = CrossEncoder(str(tiny_cross_encoder), device="cpu").predict([(question, h.text) for h in first_stage])
    best = sorted(range(len(first_stage)), key=lambda i: -float(expected[i]))[:3]
    assert [h.chunk_id for h in reranked] == [first_stage[i].chunk_id for i in best]
    assert [h.score for h in reranked] == pytest.approx([float(expected[i]) for i in best], abs=1e-5)


def test_rt_search_rerank_takes_a_model_folder(corpus_index: Path, tiny_cross_encoder: Path) -> None:
    result = CliRunner().invoke(cli, ["search", QUESTIONS[0][0], "--index", str(corpus_index), "-k", "2",
                                      "--rerank", str(tiny_cross_encoder), "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 2


def test_rt_search_rerank_names_a_folder_that_is_not_a_model(corpus_index: Path, tmp_path: Path) -> None:
    (tmp_path / "not-a-model").mkdir()
    result = CliRunner().invoke(cli, ["search", "anything", "--index", str(corpus_index),
                                      "--rerank", str(tmp_path / "not-a-model")])
    assert result.exit_code != 0
    assert "reranker" in result.stderr and "Traceback" not in result.stderr
