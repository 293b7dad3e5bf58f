"""Who may write a PostgreSQL index while another machine rebuilds it.

A rebuild builds the new index in a schema beside the index's and renames it into place at the
end (runtime/index/rebuild.py). A file another machine wrote into the old index meanwhile would
go with the old schema, so every run of writes holds :data:`WRITE_LOCK` shared (writers on
several machines still write at once, each file under its own lock) and a rebuild holds it
exclusive from before its first row until its switch: a writer waits for the new index and
writes into it, or a rebuild waits for the writers in flight. Session-level advisory locks: a
writer killed by ``kill -9`` frees it with its connection.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from runtime.errors import IndexLockedError

logger = logging.getLogger(__name__)
WRITE_LOCK = 0x72745F777269  # pg_advisory_lock key ("rt_wri"): writers shared, a rebuild exclusive


@contextlib.contextmanager
def write_lock(conn: Any, where: str, wait: float, *, exclusive: bool) -> Iterator[None]:
    """Hold :data:`WRITE_LOCK` on ``conn`` (outside a transaction): at once if free, else for up to
    ``wait`` seconds after one line in the log saying what it waits for, else
    :class:`IndexLockedError`."""
    mode = "" if exclusive else "_shared"
    row = conn.execute(f"SELECT pg_try_advisory_lock{mode}(%s)", (WRITE_LOCK,)).fetchone()
    if not row[0]:
        _wait(conn, where, wait, mode, exclusive)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):  # a connection that broke took its locks with it
            conn.execute(f"SELECT pg_advisory_unlock{mode}(%s)", (WRITE_LOCK,))


def _wait(conn: Any, where: str, wait: float, mode: str, exclusive: bool) -> None:
    import psycopg

    busy = (f"the index in {where} is being written from another machine" if exclusive else
            f"the index in {where} is being rebuilt (rt index --rebuild) from another machine")
    hint = "wait for it to finish, or pass --wait SECONDS to queue behind it"
    if wait <= 0:
        raise IndexLockedError(busy, hint=hint)
    logger.warning("%s; waiting up to %.0f s for it to finish", busy, wait)
    try:
        with conn.transaction():  # a session-level lock outlives the transaction that takes it
            conn.execute(f"SET LOCAL lock_timeout = {max(1, int(wait * 1000))}")
            conn.execute(f"SELECT pg_advisory_lock{mode}(%s)", (WRITE_LOCK,))
    except psycopg.errors.LockNotAvailable:
        raise IndexLockedError(f"{busy}, still after {wait:.0f} s", hint=hint) from None
    logger.warning("%s: the wait is over, writing now", where)
