"""What ``rt serve`` serves: a local GGUF in rt's model process, or a model on another server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from runtime.config import LoadOptions
from runtime.serve.host import ServedModel

if TYPE_CHECKING:
    from runtime.rag.endpoints import RemoteEndpoints


def model_loader(model: str | None, load: LoadOptions, remote: RemoteEndpoints | None = None
                 ) -> tuple[Callable[[], ServedModel], str]:
    """A function that loads the model (again, after a crash), and the id the API shows for it.

    The id is the registry name given, else the GGUF's file name without ``.gguf``; with
    ``remote.llm_url`` it is the remote server's model id.
    """
    if remote is not None and remote.llm_url:
        from dataclasses import replace

        probe = remote.model()
        pinned = replace(remote, llm_model=probe.model_id)
        probe.close()
        return pinned.model, pinned.llm_model or ""  # type: ignore[return-value]

    from runtime.llm.model import Model
    from runtime.models.registry import resolve_model

    path = resolve_model(model)
    model_id = model if model and not Path(model).suffix and not Path(model).exists() else path.stem

    def load_model() -> ServedModel:
        return Model(path, load)  # type: ignore[return-value]

    return load_model, model_id
