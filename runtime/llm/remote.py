"""Generation on someone else's engine: any OpenAI-compatible server (llama-server, vLLM, Ollama,
LM Studio, llama-cpp-python's server, ``rt serve``).

:class:`~runtime.http_client.RemoteClient` is the HTTP side (bounded timeouts and retries,
every failure one :class:`~runtime.errors.RemoteBackendError` naming the URL and what to
check). :class:`RemoteModel` stands where a local :class:`~runtime.llm.model.Model` stands for
prompt building and generation, so retrieval, coverage and citations stay in rt:

- ``stream`` of a :class:`~runtime.llm.types.Prompt` sends its messages to
  ``/v1/chat/completions`` (the server applies its own chat template). The prompt's answer
  prefix (rt's "According to [") goes as a trailing assistant message, which servers that
  support prefill continue (llama-server), and the question asks for it too, for those that
  start a new reply instead (llama-cpp-python's server, Ollama): a reply that repeats the prefix
  has it taken off, since rt shows it already. Plain text goes to ``/v1/completions`` as is.
- ``count_tokens`` counts a prompt's messages as role-tagged text (:meth:`RemoteModel.render`)
  with the server's tokenizer endpoint where it has one (``/tokenize`` of llama-server and
  ``rt serve``, ``/extras/tokenize`` of llama-cpp-python), else with a conservative estimate
  (one token per 3 bytes); :attr:`RemoteModel.token_counting` says which.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.config import GenerateOptions, RemoteOptions
from runtime.errors import RemoteBackendError
from runtime.http_client import RemoteClient
from runtime.llm.types import Completion, Prompt, Stream

__all__ = ["RemoteClient", "RemoteModel"]

logger = logging.getLogger(__name__)

BYTES_PER_TOKEN_ESTIMATE = 3  # English averages ~4 bytes per token; 3 errs on the side of fitting


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
    def count_tokens(self, prompt: Prompt | str) -> int:
        """Tokens of ``prompt`` (its :meth:`render` text) by the server's tokenizer, or a
        conservative estimate."""
        text = self.render(prompt) if isinstance(prompt, Prompt) else prompt
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

    def render(self, prompt: Prompt) -> str:
        """Role-tagged text of ``prompt``'s messages and its answer prefix: what is counted (the
        server renders the messages with its own template)."""
        text = "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in prompt.messages)
        if prompt.add_generation_prompt:
            text += "<|assistant|>\n"
        return text + prompt.answer_prefix

    # --- generation ------------------------------------------------------------------------
    def stream(self, prompt: Prompt | str, options: GenerateOptions = GenerateOptions()) -> Stream:
        """Generate on the server from ``prompt``'s messages (plain text: as it is), yielding text
        pieces; ``.completion`` is set at the end."""
        return Stream(self._generate(prompt, options))

    def complete(self, prompt: Prompt | str, options: GenerateOptions = GenerateOptions()) -> Completion:
        """Generate from ``prompt`` and return the whole :class:`Completion`."""
        return self.stream(prompt, options).complete()

    def _request(self, prompt: Prompt | str, options: GenerateOptions) -> tuple[str, dict[str, Any], str]:
        """The endpoint, the body, and the answer prefix the reply may repeat."""
        body: dict[str, Any] = {
            "model": self.model_id, "stream": True, "max_tokens": options.max_tokens,
            "temperature": options.temperature, "top_p": options.top_p, "seed": options.seed,
            "stream_options": {"include_usage": True},
        }
        if options.stop:
            body["stop"] = list(options.stop)
        if not isinstance(prompt, Prompt):
            return "/completions", body | {"prompt": prompt}, ""
        messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt.messages]
        prefill = prompt.answer_prefix
        if prefill.strip() and messages and messages[-1]["role"] == "user":
            asked = f'{messages[-1]["content"]}\n\nBegin your answer with "{prefill.strip()}".'
            messages[-1] = {"role": "user", "content": asked}
            messages.append({"role": "assistant", "content": prefill})
        return "/chat/completions", body | {"messages": messages}, prefill.strip()

    def _generate(self, prompt: Prompt | str, options: GenerateOptions) -> Generator[str, None, Completion]:
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
