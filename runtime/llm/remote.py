"""Generation on someone else's engine: any OpenAI-compatible server (llama-server, vLLM, Ollama,
LM Studio, llama-cpp-python's server, ``rt serve``).

:class:`~runtime.llm.remote_client.RemoteClient` is the HTTP side (bounded timeouts and retries,
every failure one :class:`~runtime.errors.RemoteBackendError` naming the URL and what to
check). :class:`RemoteModel` stands where a local :class:`~runtime.llm.model.Model` stands for
prompt building and generation, so retrieval, coverage and citations stay in rt:

- ``chat_prompt`` renders messages as plain role-tagged text for counting tokens, and
  remembers them, so that ``stream`` of that text sends the messages themselves to
  ``/v1/chat/completions`` (the server applies its own chat template). Text after the
  rendered messages (rt's answer prefix, "According to [") goes as a trailing assistant
  message, which servers that support prefill continue (llama-server), and the question asks
  for it too, for those that start a new reply instead (llama-cpp-python's server, Ollama): a
  reply that repeats the prefix has it taken off, since rt shows it already. Any other text
  goes to ``/v1/completions`` as is.
- ``count_tokens`` uses the server's tokenizer endpoint where it has one (``/tokenize`` of
  llama-server and ``rt serve``, ``/extras/tokenize`` of llama-cpp-python), else a
  conservative estimate (one token per 3 bytes); :attr:`RemoteModel.token_counting` says which.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.config import GenerateOptions, RemoteOptions
from runtime.errors import RemoteBackendError
from runtime.llm.generation import Completion
from runtime.llm.model import Stream
from runtime.llm.remote_client import RemoteClient

__all__ = ["RemoteClient", "RemoteModel"]

logger = logging.getLogger(__name__)

BYTES_PER_TOKEN_ESTIMATE = 3  # English averages ~4 bytes per token; 3 errs on the side of fitting
REMEMBERED_PROMPTS = 32


@dataclass(frozen=True)
class RemoteInfo:
    """What rt knows about a served model (in place of a GGUF's metadata)."""

    name: str
    url: str
    chat_template: str = "the server's"


class RemoteModel:
    """A model served over the OpenAI API, usable wherever rt builds prompts and streams answers.

    ``model`` is the server's model id (``None``: the first it lists); an id it does not list
    is an error that names the ones it has. Raises :class:`RemoteBackendError` when the server
    cannot be reached or refuses.
    """

    def __init__(self, url: str, model: str | None = None, *, api_key: str | None = None,
                 options: RemoteOptions = RemoteOptions()) -> None:
        self.client = RemoteClient(url, api_key=api_key, options=options)
        self.url = self.client.base
        try:
            entry = self._pick(self.client.get("/models"), model)
            self.model_id: str = str(entry["id"])
            self.n_ctx, self.n_ctx_source = self._context(entry, options.n_ctx)
            self._tokenizer = self._find_tokenizer()
        except BaseException:
            self.client.close()
            raise
        self.info = RemoteInfo(self.model_id, self.url)
        self.path = Path(self.model_id)
        self.token_counting = (f"the server's tokenizer ({self.client.root}{self._tokenizer[0]})" if self._tokenizer
                               else f"an estimate (1 token per {BYTES_PER_TOKEN_ESTIMATE} bytes; "
                                    "the server has no tokenizer endpoint)")
        logger.info("%s at %s: context %d tokens (%s); prompts counted with %s", self.model_id, self.url,
                    self.n_ctx, self.n_ctx_source, self.token_counting)
        if not self._tokenizer:
            logger.warning("%s has no tokenizer endpoint; the context budget uses %s", self.url,
                           self.token_counting)
        self._rendered: OrderedDict[str, list[dict[str, str]]] = OrderedDict()

    def _pick(self, listing: Any, model: str | None) -> Mapping[str, Any]:
        entries = [e for e in (listing.get("data") or []) if isinstance(e, Mapping) and "id" in e] \
            if isinstance(listing, Mapping) else []
        entries = [e for e in entries if e.get("type") != "embedding"] or entries
        if not entries:
            raise RemoteBackendError(f"{self.client.base}/models lists no model", url=self.client.base,
                                     hint="load a model on the server")
        if model is None:
            return entries[0]
        for entry in entries:
            if entry["id"] == model:
                return entry
        names = ", ".join(str(e["id"]) for e in entries[:10])
        raise RemoteBackendError(f"{self.client.base} has no model {model!r} (it has: {names})",
                                 url=self.client.base, hint="pass one of those with --llm-model")

    def _context(self, entry: Mapping[str, Any], fallback: int) -> tuple[int, str]:
        meta = entry.get("meta") if isinstance(entry.get("meta"), Mapping) else {}
        for key, value in (("context_length", entry.get("context_length")),
                           ("max_model_len", entry.get("max_model_len")), ("n_ctx", entry.get("n_ctx")),
                           ("meta.n_ctx_train", meta.get("n_ctx_train"))):  # type: ignore[union-attr]
            if isinstance(value, int) and value > 0:
                return value, f"from /v1/models {key}"
        try:
            props = self.client.get_root("/props")  # llama-server
        except RemoteBackendError:  # not there: /v1/models answered, so the server is reachable
            props = None
        settings = props.get("default_generation_settings") if isinstance(props, Mapping) else None
        n_ctx = settings.get("n_ctx") if isinstance(settings, Mapping) else None
        if isinstance(n_ctx, int) and n_ctx > 0:
            return n_ctx, "from /props"
        return fallback, "assumed: the server does not say"

    def _find_tokenizer(self) -> tuple[str, str] | None:
        for path, field in (("/tokenize", "content"), ("/extras/tokenize", "input")):
            try:
                answer = self.client.post(path, {field: "rt"}, root=True)
            except RemoteBackendError:
                continue
            if isinstance(answer, Mapping) and isinstance(answer.get("tokens"), list):
                return path, field
        return None

    # --- what prompt building needs --------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` by the server's tokenizer, or a conservative estimate."""
        if self._tokenizer is None:
            return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN_ESTIMATE)
        return len(self.tokenize(text))

    def tokenize(self, text: str, *, add_special: bool = False) -> list[int]:
        """Token ids by the server's tokenizer (:class:`RemoteBackendError` if it has none)."""
        if self._tokenizer is None:
            raise RemoteBackendError(f"{self.client.root} has no tokenizer endpoint", url=self.url,
                                     hint="token counts are estimated for this server")
        path, field = self._tokenizer
        answer = self.client.post(path, {field: text, "add_special": add_special}, root=True)
        return [int(t) for t in answer["tokens"]]

    def chat_prompt(self, messages: Sequence[Mapping[str, str]], *, add_generation_prompt: bool = True) -> str:
        """Role-tagged text of ``messages`` (for counting); :meth:`stream` sends the messages."""
        kept = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
        text = "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in kept)
        if add_generation_prompt:
            text += "<|assistant|>\n"
        self._rendered[text] = kept
        self._rendered.move_to_end(text)
        while len(self._rendered) > REMEMBERED_PROMPTS:
            self._rendered.popitem(last=False)
        return text

    # --- generation ------------------------------------------------------------------------
    def stream(self, prompt: str, options: GenerateOptions = GenerateOptions()) -> Stream:
        """Generate on the server, yielding text pieces; ``.completion`` is set at the end."""
        return Stream(self._generate(prompt, options))

    def complete(self, prompt: str, options: GenerateOptions = GenerateOptions()) -> Completion:
        stream = self.stream(prompt, options)
        for _ in stream:
            pass
        assert stream.completion is not None
        return stream.completion

    def _request(self, prompt: str, options: GenerateOptions) -> tuple[str, dict[str, Any], str]:
        """The endpoint, the body, and the answer prefix the reply may repeat."""
        body: dict[str, Any] = {
            "model": self.model_id, "stream": True, "max_tokens": options.max_tokens,
            "temperature": options.temperature, "top_p": options.top_p, "seed": options.seed,
            "stream_options": {"include_usage": True},
        }
        if options.stop:
            body["stop"] = list(options.stop)
        for rendered in sorted(self._rendered, key=len, reverse=True):
            if prompt.startswith(rendered):
                messages = list(self._rendered[rendered])
                prefill = prompt[len(rendered):]
                if prefill.strip() and messages and messages[-1]["role"] == "user":
                    asked = f'{messages[-1]["content"]}\n\nBegin your answer with "{prefill.strip()}".'
                    messages[-1] = {"role": "user", "content": asked}
                    messages.append({"role": "assistant", "content": prefill})
                return "/chat/completions", body | {"messages": messages}, prefill.strip()
        return "/completions", body | {"prompt": prompt}, ""

    def _generate(self, prompt: str, options: GenerateOptions) -> Generator[str, None, Completion]:
        path, body, prefix = self._request(prompt, options)
        started = time.perf_counter()
        first: float | None = None
        pieces: list[str] = []
        finish, usage = "stop", None
        events = _without_prefix(self.client.events(path, body), prefix)
        try:
            for event in events:
                usage = event.get("usage") or usage
                for choice in event.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content") if "delta" in choice else choice.get("text")
                    finish = choice.get("finish_reason") or finish
                    if text:
                        first = first or time.perf_counter()
                        pieces.append(text)
                        yield text
        finally:
            events.close()  # type: ignore[attr-defined]
        ended = time.perf_counter()
        first = first or ended
        prompt_tokens = int((usage or {}).get("prompt_tokens") or 0)
        completion_tokens = int((usage or {}).get("completion_tokens") or len(pieces))
        return Completion(text="".join(pieces), prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                          cached_tokens=0, finish_reason="length" if finish == "length" else "stop",
                          prompt_seconds=first - started, generation_seconds=ended - first)

    def close(self) -> None:
        """Close the HTTP connections. Idempotent."""
        self.client.close()

    def __enter__(self) -> RemoteModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _without_prefix(events: Iterator[dict[str, Any]], prefix: str) -> Iterator[dict[str, Any]]:
    """``events`` with ``prefix`` taken off the start of the reply, when the reply repeats it.

    The reply's first characters are held back until they either match the whole prefix
    (dropped) or depart from it (sent as they came).
    """
    held, deciding = "", bool(prefix)
    try:
        for event in events:
            choices = event.get("choices") or []
            delta = (choices[0].get("delta") or {}) if choices and "delta" in choices[0] else None
            text = delta.get("content") if delta is not None else None
            if not deciding or not text:
                if deciding and choices and choices[0].get("finish_reason") and held:
                    deciding = False
                    yield _with_content(event, held + (text or ""))
                    continue
                yield event
                continue
            held += text
            candidate = held.lstrip()
            if len(candidate) < len(prefix) and prefix.startswith(candidate):
                continue  # could still be the prefix
            deciding = False
            rest = candidate[len(prefix):] if candidate.startswith(prefix) else held
            yield _with_content(event, rest)
        if deciding and held:  # the reply ended inside what looked like the prefix
            yield {"choices": [{"delta": {"content": held}, "finish_reason": None}]}
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


def _with_content(event: dict[str, Any], text: str) -> dict[str, Any]:
    choice = dict(event["choices"][0])
    choice["delta"] = dict(choice.get("delta") or {}) | {"content": text}
    return event | {"choices": [choice, *event["choices"][1:]]}


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
        assert self.llm_url is not None
        return RemoteModel(self.llm_url, self.llm_model, api_key=self.api_key, options=self.options)

    def embedder(self) -> Any:
        """The remote :class:`~runtime.index.embedders.remote.RemoteEmbedder`."""
        from runtime.index.embedders.remote import RemoteEmbedder

        assert self.embed_url is not None
        return RemoteEmbedder(self.embed_url, self.embed_model, api_key=self.api_key, options=self.options)
