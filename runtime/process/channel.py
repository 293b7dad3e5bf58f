"""Messages between rt and its model process: length-prefixed pickles over a pair of pipes,
and errors carried across them so the parent re-raises the child's :class:`RtError` as is."""

from __future__ import annotations

import pickle
import struct
from typing import IO, Any

from runtime import errors
from runtime.errors import RtError

_HEADER = struct.Struct("<I")


def encode(message: Any) -> bytes:
    """One framed message."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


class Channel:
    """Send and receive framed messages; :meth:`recv` raises ``EOFError`` when the peer is gone."""

    def __init__(self, reader: IO[bytes], writer: IO[bytes]) -> None:
        self._reader, self._writer = reader, writer

    def send(self, message: Any) -> None:
        self._writer.write(encode(message))
        self._writer.flush()

    def _read_exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self._reader.read(n - len(data))
            if not chunk:
                raise EOFError("the other side closed the channel")
            data += chunk
        return data

    def recv(self) -> Any:
        (size,) = _HEADER.unpack(self._read_exactly(_HEADER.size))
        return pickle.loads(self._read_exactly(size))


def error_payload(exc: BaseException) -> tuple[str, str, dict[str, Any]]:
    """A picklable description of ``exc`` for :func:`rebuild_error`."""
    if isinstance(exc, RtError):
        return (type(exc).__name__, exc.message, dict(vars(exc)))
    return ("", f"{type(exc).__name__}: {exc}", {})


def rebuild_error(payload: tuple[str, str, dict[str, Any]]) -> Exception:
    """The child's :class:`RtError` (same class, message, hint and facts), or a RuntimeError."""
    name, message, state = payload
    cls = getattr(errors, name, None) if name else None
    if isinstance(cls, type) and issubclass(cls, RtError):
        exc = cls.__new__(cls)
        Exception.__init__(exc, message)
        exc.__dict__.update(state)
        return exc
    return RuntimeError(f"in the model process: {message}")
