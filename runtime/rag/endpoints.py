"""Where generation and embedding go instead of the local models (``--llm-url``, ``--embed-url``).

Its users are the answering layer and its two front ends (``RAG.open``, ``rt serve``, the CLI's
options); it hands out a :class:`~runtime.llm.remote.RemoteModel` and a
:class:`~runtime.index.embedders.remote.RemoteEmbedder`, so it lives above both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from runtime.config import RemoteOptions

if TYPE_CHECKING:
    from runtime.index.embedders.remote import RemoteEmbedder
    from runtime.llm.remote import RemoteModel


@dataclass(frozen=True)
class RemoteEndpoints:
    """Where generation and embedding go instead of local models (``--llm-url``, ``--embed-url``).

    ``None`` URLs keep the local model. ``api_key`` is sent to both servers.
    """

    llm_url: str | None = None
    llm_model: str | None = None
    embed_url: str | None = None
    embed_model: str | None = None
    api_key: str | None = None
    options: RemoteOptions = RemoteOptions()

    def __repr__(self) -> str:  # a traceback or a log may show it: no password, no key
        from runtime.redact import redact_credentials

        def shown(url: str | None) -> str | None:
            return None if url is None else redact_credentials(url).split("?")[0]

        return (f"RemoteEndpoints(llm_url={shown(self.llm_url)!r}, llm_model={self.llm_model!r}, "
                f"embed_url={shown(self.embed_url)!r}, embed_model={self.embed_model!r}, "
                f"api_key={'***' if self.api_key else None})")

    @classmethod
    def from_options(cls, llm_url: str | None = None, llm_model: str | None = None, embed_url: str | None = None,
                     api_key: str | None = None) -> RemoteEndpoints | None:
        """The endpoints given, with ``RT_LLM_URL``, ``RT_EMBED_URL`` and ``RT_LLM_API_KEY`` for
        those not given; ``None`` when neither URL is set."""
        from runtime import env

        llm_url, embed_url = llm_url or env.llm_url(), embed_url or env.embed_url()
        if not llm_url and not embed_url:
            return None
        return cls(llm_url=llm_url, llm_model=llm_model, embed_url=embed_url,
                   api_key=api_key or env.remote_api_key())

    def model(self) -> RemoteModel:
        """The remote language model (:class:`RemoteBackendError` when unreachable)."""
        from runtime.llm.remote import RemoteModel

        assert self.llm_url is not None
        return RemoteModel(self.llm_url, self.llm_model, api_key=self.api_key, options=self.options)

    def embedder(self) -> RemoteEmbedder:
        """The remote :class:`~runtime.index.embedders.remote.RemoteEmbedder`."""
        from runtime.index.embedders.remote import RemoteEmbedder

        assert self.embed_url is not None
        return RemoteEmbedder(self.embed_url, self.embed_model, api_key=self.api_key, options=self.options)
