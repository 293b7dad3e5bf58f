"""One error hierarchy for rt.

Every error rt expects derives from :class:`RtError` and also from the builtin it means, so
callers can catch either (``except FileNotFoundError`` still works). Messages are for people:
what happened, with numbers, and what to do next. The CLI renders them on one line.
"""

from __future__ import annotations


class RtError(Exception):
    """Base class of every error rt raises on purpose.

    ``hint`` is the next step for the person ("try --ctx 2048"); ``str()`` joins both.
    """

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


# --- configuration and input -------------------------------------------------------------
class ConfigError(RtError, ValueError):
    """A setting or option has a value rt cannot use."""


class InputError(RtError, ValueError):
    """A prompt, question or other user input cannot be used as given."""


# --- model files ---------------------------------------------------------------------------
class ModelNotFoundError(RtError, FileNotFoundError):
    """No model file (or registry entry) under the name or path given."""


class ModelFileError(RtError, ValueError):
    """A model file exists but is not a usable GGUF (corrupt, truncated, wrong format)."""

    def __init__(self, message: str, *, path: object = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.path = path


class TruncatedModelError(ModelFileError):
    """The GGUF is shorter than its own tensor table says (an interrupted download)."""


class UnsupportedModelError(RtError, ValueError):
    """The model's architecture or tensor types are not supported by the bundled llama.cpp."""


# --- resources -----------------------------------------------------------------------------
class ResourceError(RtError):
    """Base of the "not enough of something" errors; carries the two numbers compared."""

    def __init__(
        self, message: str, *, needed: int = 0, available: int = 0, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.needed = needed
        self.available = available


class InsufficientMemoryError(ResourceError, MemoryError):
    """Loading would need more memory than the machine can give."""


class InsufficientDiskError(ResourceError, OSError):
    """A write would need more disk space than the target folder has."""


# --- running the model ---------------------------------------------------------------------
class ContextOverflowError(RtError, ValueError):
    """A prompt does not fit the context window."""

    def __init__(
        self, message: str, *, tokens: int = 0, n_ctx: int = 0, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.tokens = tokens
        self.n_ctx = n_ctx


class ModelCrashedError(RtError, RuntimeError):
    """The model process died (native crash, out-of-memory kill) instead of answering."""

    exit_code = 3

    def __init__(self, message: str, *, returncode: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.returncode = returncode


class ModelLoadError(RtError, RuntimeError):
    """llama.cpp refused to load the model or create its context."""


class GenerationError(RtError, RuntimeError):
    """llama.cpp failed to tokenize, decode or detokenize with a loaded model."""


# --- models registry, conversion, downloads ------------------------------------------------
class RegistryError(RtError, ValueError):
    """The model registry (manifest) is unreadable or an entry is inconsistent."""


class FileInUseError(RtError, PermissionError):
    """Windows refused to replace or delete a file another program holds open (a loaded model).

    ``path`` is the file that could not be replaced; ``kept`` is where the finished new file
    was kept instead (``None`` when the refusal came before any work).
    """

    def __init__(self, message: str, *, path: object = None, kept: object = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.path = path
        self.kept = kept


class PathTooLongError(RtError, OSError):
    """A file rt would create has a path longer than Windows accepts without long-path support."""

    def __init__(self, message: str, *, path: object = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.path = path


class ConvertError(RtError, ValueError):
    """A checkpoint cannot be converted (missing shard, bad header, unsupported layout)."""


class UnsupportedArchitectureError(ConvertError):
    """The checkpoint's architecture has no converter."""


class DownloadError(RtError, ConnectionError):
    """A download from the hub failed."""


class RemoteBackendError(RtError, ConnectionError):
    """An OpenAI-compatible server rt sends generation or embedding to failed or refused."""

    def __init__(self, message: str, *, url: str = "", status: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.url = url
        self.status = status


class ChecksumError(DownloadError):
    """A downloaded file's size or sha256 differs from what the hub reports."""


# --- documents index -----------------------------------------------------------------------
class IndexNotFoundError(RtError, FileNotFoundError):
    """No index exists at the folder given."""


class IndexMismatchError(RtError, ValueError):
    """The index was built with another embedding model or dimension."""


class IndexLockedError(RtError, TimeoutError):
    """Another process is writing the index."""


class IndexCorruptError(RtError, ValueError):
    """The index files are unreadable or inconsistent."""


class IndexServerError(RtError, ConnectionError):
    """A PostgreSQL index's server is down, unreachable, refuses us, is too old or lacks pgvector.

    ``where`` is the server as people may see it: its URL without credentials.
    """

    def __init__(self, message: str, *, where: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.where = where


# --- answers -------------------------------------------------------------------------------
class UnsupportedAnswerError(RtError, ValueError):
    """``--strict``: an answer from the documents has no sentence that its cited sources support."""

    exit_code = 4
