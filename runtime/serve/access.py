"""Who may use ``rt serve``: the API key (from ``--api-key``, ``--api-key-file`` or
``RT_API_KEY``) and the refusal to listen beyond loopback without one."""

from __future__ import annotations

from pathlib import Path

from runtime import env
from runtime.errors import ConfigError
from runtime.serve.config import ServeOptions

MAX_KEY_FILE = 4096


def read_key_file(path: Path) -> str:
    """The key in ``path``: its text without surrounding whitespace (a trailing newline)."""
    try:
        if path.stat().st_size > MAX_KEY_FILE:
            raise ConfigError(f"--api-key-file {path} is {path.stat().st_size} bytes; a key file holds one "
                              f"line of at most {MAX_KEY_FILE} bytes")
        key = path.read_text(encoding="utf-8-sig").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(f"cannot read --api-key-file {path}: {reason}",
                          hint="give a file holding the key on one line") from None
    if not key or "\n" in key:
        raise ConfigError(f"--api-key-file {path} must hold the key on one line, and holds "
                          f"{'nothing' if not key else str(len(key.splitlines())) + ' lines'}")
    return key


def resolve_api_key(flag: str | None, key_file: Path | None) -> str | None:
    """The key the server requires: ``--api-key``, else ``--api-key-file``, else ``RT_API_KEY``.

    ``--api-key`` shows in every process listing (``ps``, Task Manager); the file and the
    environment variable do not. Both options at once is an error, not a silent choice.
    """
    if flag is not None and key_file is not None:
        raise ConfigError("--api-key and --api-key-file both give a key", hint="keep one of them")
    if flag is not None:
        if not flag.strip():
            raise ConfigError("--api-key is empty", hint="give a key, or leave the option out")
        return flag.strip()
    if key_file is not None:
        return read_key_file(key_file)
    return env.api_key()


def check_exposure(options: ServeOptions) -> None:
    """Refuse to listen beyond loopback without a key, unless ``options.insecure``.

    On another address, anyone who can reach the machine would read the indexed documents
    through ``rag`` and use the model.
    """
    if options.loopback or options.api_key or options.insecure:
        return
    raise ConfigError(f"refusing to listen on {options.host} without --api-key: anyone who can reach this "
                      "machine could read your indexed documents",
                      hint="give --api-key-file PATH (or RT_API_KEY), or --insecure to serve without a key")
