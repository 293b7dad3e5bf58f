"""KV cache types are defined and checked in one place (runtime.config), and a failure of
llama.cpp after loading is a GenerationError that crosses the process boundary as itself."""

from __future__ import annotations

from pathlib import Path

import gguf
import pytest

from runtime.config import KV_CACHE_TYPES, KV_TYPES, LoadOptions, kv_cache_type
from runtime.errors import ConfigError, GenerationError, ModelLoadError, RtError
from runtime.process.channel import error_payload, rebuild_error


def test_an_unknown_kv_type_is_refused_when_the_options_are_made() -> None:
    with pytest.raises(ConfigError) as caught:
        LoadOptions(kv_type="q3")
    assert "unknown KV cache type 'q3'" in str(caught.value)
    assert all(name in str(caught.value) for name in KV_TYPES)


@pytest.mark.parametrize("name", KV_TYPES)
def test_each_kv_type_matches_ggml(name: str) -> None:
    """Block sizes as the gguf package has them, and a ggml type of that name in llama.cpp."""
    from runtime.llm.llama_native import ggml_kv_type

    kv = kv_cache_type(name)
    ggml = gguf.GGMLQuantizationType[name.upper()]
    assert gguf.GGML_QUANT_SIZES[ggml] == (kv.block, kv.block_bytes)
    assert ggml_kv_type(name) == int(ggml)
    assert KV_CACHE_TYPES[name] is kv


def test_the_cli_offers_exactly_the_kv_types() -> None:
    import click

    from runtime.cli.options import model_options

    @click.command()
    @model_options
    def probe(**_: object) -> None: ...

    choice = next(p for p in probe.params if p.name == "kv_type").type
    assert isinstance(choice, click.Choice) and tuple(choice.choices) == KV_TYPES


def test_a_failed_decode_is_a_generation_error(smollm2_path: Path) -> None:
    from runtime.llm.kv_sequence import KVSequence
    from runtime.llm.llama_native import ggml_kv_type, init_backend
    from runtime.llm.native import ContextParams, NativeContext, NativeModel

    init_backend()
    model = NativeModel(smollm2_path)
    context = NativeContext(model, ContextParams(n_ctx=256, n_batch=256, n_outputs=1, n_threads=1,
                                                 n_threads_batch=1, kv_type=ggml_kv_type("f16")))
    try:
        sequence = KVSequence(context)
        sequence.decode(model.tokenize(b"Paris is", True, False))
        with pytest.raises(GenerationError, match="llama_decode failed") as caught:
            sequence.decode([10**7])  # a token id beyond the vocabulary: llama.cpp returns -1
        assert not isinstance(caught.value, ModelLoadError)
        assert sequence.tokens == () and context.last_position() == -1  # emptied, not half-known
        sequence.decode(model.tokenize(b"Paris", True, False))  # still usable
        assert len(sequence) == context.last_position() + 1
    finally:
        context.close()
        model.close()


def test_generation_error_is_rebuilt_as_itself_across_the_process_boundary() -> None:
    sent = GenerationError("llama_decode failed with code -1 at position 7", hint="RT_DEBUG=1 shows llama.cpp's log")
    received = rebuild_error(error_payload(sent))
    assert type(received) is GenerationError and isinstance(received, (RtError, RuntimeError))
    assert str(received) == str(sent) and received.hint == sent.hint
