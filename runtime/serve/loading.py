"""What ``rt serve`` serves: a local GGUF in rt's model process, or a model on another server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from runtime.config import LoadOptions
from runtime.serve.host import ServedModel


def model_loader(model: str | None, load: LoadOptions, *, llm_url: str | None = None,
                 llm_model: str | None = None, llm_api_key: str | None = None
                 ) -> tuple[Callable[[], ServedModel], str]:
    """A function that loads the model (again, after a crash), and the id the API shows for it.

    The id is the registry name given, else the GGUF's file name without ``.gguf``; with
    ``llm_url`` it is the remote server's model id.
    """
    if llm_url:
        from runtime.llm.remote import RemoteModel

        probe = RemoteModel(llm_url, llm_model, api_key=llm_api_key)
        model_id = probe.model_id
        probe.close()
        return (lambda: RemoteModel(llm_url, model_id, api_key=llm_api_key)), model_id  # type: ignore[return-value]

    from runtime.llm.model import Model
    from runtime.models.registry import resolve_model

    path = resolve_model(model)
    model_id = model if model and not Path(model).suffix and not Path(model).exists() else path.stem

    def load_model() -> ServedModel:
        return Model(path, load)  # type: ignore[return-value]

    return load_model, model_id
