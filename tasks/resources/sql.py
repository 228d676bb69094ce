"""The SQL connection under the audit store: one SQLAlchemy URL, its engine and tables, and the scopes every
read and write runs in.

On SQLite it turns on WAL and a busy timeout and takes the write lock at BEGIN (``BEGIN IMMEDIATE``) for
writing transactions, so several processes (flow runs, workers, notebooks) can share one file without
"database is locked" surprises; elsewhere it pings pooled connections before use. ``_writing`` and
``_reading`` join the caller's connection, or the ambient one of an :meth:`SqlDatabase.atomic` block, or
open their own; database errors surface as :class:`StoreError` naming the (password-masked) URL.

This is *how* the store talks to a database, kept apart from *what* it records
(:mod:`tasks.resources.store`): the locking and transaction rules are subtle and read best on their own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.core.errors import StoreError

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine, MetaData, Table

BUSY_TIMEOUT_MS = 30_000
WRITE_OPTION = "driftgate_write"  # execution option of a connection that will write: SQLite begins IMMEDIATE
Schema = Callable[[], "tuple[MetaData, dict[str, Table]]"]


def mask_url(url: str) -> str:
    """The URL with its password hidden, fit for messages and logs."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        # Not parseable as a URL: still hide whatever sits between "user:" and "@".
        from tasks.core.paths import mask_password

        return mask_password(url)


class SqlDatabase:
    """One SQLAlchemy URL: its engine, created on first use with the tables ``schema`` describes."""

    def __init__(self, url: str, schema: Schema) -> None:
        self.url = url
        self.masked_url = mask_url(url)
        self._schema = schema
        self._engine: Engine | None = None
        self._tables: dict[str, Table] = {}
        self._lock = threading.Lock()
        # The connection of an atomic() block, joined by every read and write of this store inside it.
        self._ambient: ContextVar[Connection | None] = ContextVar(f"driftgate_store_{id(self)}", default=None)

    def _error(self, action: str, exc: BaseException) -> StoreError:
        detail = getattr(exc, "orig", None) or exc
        return StoreError(f"audit store {self.masked_url}: {action} failed: {type(detail).__name__}: {detail}")

    def _ready(self) -> Engine:
        if self._engine is not None:
            return self._engine
        with self._lock:
            if self._engine is None:
                engine = self._create_engine()
                self._create_tables(engine)
                self._engine = engine
        return self._engine

    def _create_engine(self) -> Engine:
        from sqlalchemy import create_engine, event
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError
        from sqlalchemy.pool import StaticPool

        try:
            url = make_url(self.url)
        except (ArgumentError, ValueError) as exc:
            raise StoreError(f"audit store URL {self.masked_url} is not a valid SQLAlchemy URL: {exc}") from exc
        kwargs: dict[str, Any] = {}
        is_sqlite = url.get_backend_name() == "sqlite"
        if is_sqlite:
            database = url.database or ""
            in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
            if in_memory:
                # One shared connection, else every connection would see its own empty database.
                kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
            else:
                try:
                    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreError(
                        f"audit store {self.masked_url}: cannot create the directory of {database}: {exc}"
                    ) from exc
                kwargs["connect_args"] = {"timeout": BUSY_TIMEOUT_MS / 1000}
        else:
            kwargs["pool_pre_ping"] = True
        try:
            engine = create_engine(url, **kwargs)
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise StoreError(f"audit store {self.masked_url}: cannot create an engine: {exc}") from exc

        if is_sqlite:

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
                # Leave BEGIN to SQLAlchemy (see _on_begin): sqlite3's legacy mode skips it for SELECT/DDL.
                dbapi_connection.isolation_level = None
                cursor = dbapi_connection.cursor()
                cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.close()

            @event.listens_for(engine, "begin")
            def _on_begin(conn: Connection) -> None:
                # A writer takes the lock up front; a deferred writer could fail to upgrade from a stale
                # read snapshot with SQLITE_BUSY, which the busy timeout does not retry.
                mode = "IMMEDIATE" if conn.get_execution_options().get(WRITE_OPTION) else "DEFERRED"
                conn.exec_driver_sql(f"BEGIN {mode}")

        return engine

    def _create_tables(self, engine: Engine) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        metadata, tables = self._schema()
        for attempt in range(2):
            try:
                with engine.connect() as conn:
                    conn.execution_options(**{WRITE_OPTION: True})
                    with conn.begin():
                        metadata.create_all(conn, checkfirst=True)
                break
            except SQLAlchemyError as exc:
                # Two processes creating the tables at once: the loser sees "already exists"; look again.
                if attempt == 1:
                    engine.dispose()
                    raise self._error("creating tables", exc) from exc
        self._tables = tables

    def engine(self) -> Engine:
        """The engine, created (with the tables) on first use: for callers that hold their own transactions."""
        return self._ready()

    def table(self, name: str) -> Table:
        self._ready()
        return self._tables[name]

    @contextmanager
    def _writing(self, conn: Connection | None, action: str) -> Iterator[Connection]:
        from sqlalchemy.exc import SQLAlchemyError

        conn = conn if conn is not None else self._ambient.get()
        try:
            if conn is not None:
                yield conn
                return
            with self._ready().connect() as own:
                own.execution_options(**{WRITE_OPTION: True})
                with own.begin():
                    yield own
        except SQLAlchemyError as exc:
            raise self._error(action, exc) from exc

    @contextmanager
    def _reading(self, conn: Connection | None, action: str) -> Iterator[Connection]:
        from sqlalchemy.exc import SQLAlchemyError

        conn = conn if conn is not None else self._ambient.get()
        try:
            if conn is not None:
                yield conn
                return
            with self._ready().connect() as own:
                yield own
        except SQLAlchemyError as exc:
            raise self._error(action, exc) from exc

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """Several writes, all or none: pass the yielded connection as ``conn=`` to the record_* methods.

        Any exception inside the block rolls everything back and propagates (database errors as StoreError).
        """
        with self._writing(None, "transaction") as conn:
            yield conn

    @contextmanager
    def atomic(self) -> Iterator[Connection]:
        """Every read and write of this store inside the block (in this thread or context) in one transaction:
        the record_* calls, transaction() blocks and the event outbox join it, so a decision and the events
        announcing it are kept together or not at all. A nested atomic() joins the outer one. ``claim`` keeps
        its own committed transaction: do not claim inside (on SQLite it would wait for this one's lock).
        """
        outer = self._ambient.get()
        if outer is not None:
            yield outer
            return
        with self._writing(None, "atomic block") as conn:
            token = self._ambient.set(conn)
            try:
                yield conn
            finally:
                self._ambient.reset(token)

    def _rows(
        self,
        table_name: str,
        what: str,
        conn: Connection | None,
        *conditions: Any,
        **equal: Any,
    ) -> list[dict[str, Any]]:
        """Rows of one table, oldest first, where every non-None ``equal`` column matches and ``conditions`` hold."""
        table = self.table(table_name)
        query = table.select().where(
            *conditions, *(table.c[column] == value for column, value in equal.items() if value is not None)
        )
        with self._reading(conn, what) as c:
            return [dict(row._mapping) for row in c.execute(query.order_by(table.c.id))]

    def close(self) -> None:
        """Release pooled connections; the store reconnects if used again."""
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None


def dialect_insert(dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert
