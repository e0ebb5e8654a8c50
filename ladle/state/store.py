"""The SQLite state store: schema, row access and the intent log.

Rows are plain dicts so that state changes can be expressed as `StatePut` steps and undone.
The schema has room for what comes next (images, restart policies) as new tables, added by
bumping SCHEMA_VERSION with a migration. A write that must read what it depends on first (an
address lease: the next free address) runs in `transaction`, which holds SQLite's write lock.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ladle import platform as proc
from ladle.errors import HostError, StateError

SCHEMA_VERSION = 8

NET_TABLES = """
CREATE TABLE IF NOT EXISTS networks (
    name TEXT PRIMARY KEY, kind TEXT NOT NULL, ipv4 TEXT, ipv6 TEXT, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (         -- an address is one pot's: never handed out twice
    network TEXT NOT NULL, address TEXT NOT NULL, pot TEXT NOT NULL, family INTEGER NOT NULL,
    created REAL NOT NULL, PRIMARY KEY (network, address), UNIQUE (network, pot, family)
);
"""

EXPORTS = """
CREATE TABLE IF NOT EXISTS exports (        -- a host port of a protocol is one pot's
    host_port INTEGER NOT NULL, proto TEXT NOT NULL, pot TEXT NOT NULL, pot_port INTEGER NOT NULL,
    PRIMARY KEY (host_port, proto)
);
"""

# The image index: a name and tag (or '' for an image pulled by digest) -> the digest it resolved
# to (an index or a manifest) and the manifest of this host's platform, whose blobs are in the
# content store (ladle.images.blobs).
IMAGE_TABLES = """
CREATE TABLE IF NOT EXISTS images (
    name TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL, manifest TEXT NOT NULL,
    media_type TEXT NOT NULL, size INTEGER NOT NULL, created TEXT, pulled REAL NOT NULL,
    PRIMARY KEY (name, tag, digest)
);
"""

# How to bring a database of version N-1 to version N (a fresh database gets _SCHEMA directly).
_MIGRATIONS = {
    2: """
ALTER TABLE runs RENAME COLUMN supervisor_pid TO monitor_pid;
ALTER TABLE runs RENAME COLUMN supervisor_start TO monitor_start;
ALTER TABLE runs ADD COLUMN main_start INTEGER;
ALTER TABLE runs ADD COLUMN persistent INTEGER;
ALTER TABLE runs ADD COLUMN on_exit TEXT;
""",
    3: """
ALTER TABLE layers RENAME COLUMN kind TO layout;
ALTER TABLE layers ADD COLUMN kind TEXT NOT NULL DEFAULT 'active';
""",
    4: NET_TABLES,
    5: "ALTER TABLE pots ADD COLUMN net TEXT NOT NULL DEFAULT '{}';\n" + EXPORTS,
    6: IMAGE_TABLES,
    7: """
ALTER TABLE pots ADD COLUMN life TEXT NOT NULL DEFAULT '{}';
ALTER TABLE runs ADD COLUMN restarts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN streak INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN restart_at REAL;
ALTER TABLE runs ADD COLUMN health TEXT;
ALTER TABLE runs ADD COLUMN health_fails INTEGER NOT NULL DEFAULT 0;
""",
    8: "ALTER TABLE pots ADD COLUMN image TEXT NOT NULL DEFAULT '{}';\n",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS layers (
    key TEXT PRIMARY KEY,       -- e.g. bases/busybox, pots/web, fscomps/data
    kind TEXT NOT NULL,         -- active (writable) or view (read-only); committed ones are `snapshots`
    layout TEXT NOT NULL,       -- full: a whole tree; overlay: an upper layer over `parent`'s tree
    parent TEXT,                -- the committed snapshot 'key@snap' it was made from
    origin TEXT                 -- ZFS clone origin 'key@snap': a dependency until promoted
);
CREATE TABLE IF NOT EXISTS snapshots (
    key TEXT NOT NULL, name TEXT NOT NULL, created REAL NOT NULL, PRIMARY KEY (key, name)
);
CREATE TABLE IF NOT EXISTS bases (
    name TEXT PRIMARY KEY, release TEXT NOT NULL, source TEXT NOT NULL, layer TEXT NOT NULL,
    created REAL NOT NULL
);
-- pots' JSON columns (comments stay out of the column list, which ALTER TABLE ... DROP COLUMN
-- rewrites): net, the network's settings (engine/potnet.py); life, healthcheck, hooks and
-- dependencies (engine/health.py, hooks.py, deps.py); image, how a pot made from an image runs (engine/imagepots.py)
CREATE TABLE IF NOT EXISTS pots (
    name TEXT PRIMARY KEY, base TEXT NOT NULL, type TEXT NOT NULL, level INTEGER NOT NULL,
    potbase TEXT, cmd TEXT NOT NULL, env TEXT NOT NULL, attrs TEXT NOT NULL,
    network TEXT NOT NULL, layer TEXT NOT NULL, created REAL NOT NULL,
    net TEXT NOT NULL DEFAULT '{}', life TEXT NOT NULL DEFAULT '{}', image TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS fscomps (
    name TEXT PRIMARY KEY, layer TEXT NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS pot_mounts (
    pot TEXT NOT NULL, mountpoint TEXT NOT NULL, kind TEXT NOT NULL, source TEXT NOT NULL,
    ro INTEGER NOT NULL, seq REAL NOT NULL, PRIMARY KEY (pot, mountpoint)
);
CREATE TABLE IF NOT EXISTS runs (
    pot TEXT PRIMARY KEY, state TEXT NOT NULL, monitor_pid INTEGER, monitor_start INTEGER,
    init_pid INTEGER, init_start INTEGER, main_pid INTEGER, main_start INTEGER,
    persistent INTEGER, on_exit TEXT, started REAL, finished REAL, exit_code INTEGER, error TEXT,
    restarts INTEGER NOT NULL DEFAULT 0,  -- restarts by its policy since it was last started by hand
    streak INTEGER NOT NULL DEFAULT 0,    -- of them, in a row that ran < 10 s (the back-off's exponent)
    restart_at REAL,                      -- when its policy starts it again (state 'restarting')
    health TEXT, health_fails INTEGER NOT NULL DEFAULT 0  -- starting | healthy | unhealthy; failures in a row
);
CREATE TABLE IF NOT EXISTS ops (
    id INTEGER PRIMARY KEY AUTOINCREMENT, verb TEXT NOT NULL, subject TEXT NOT NULL,
    pid INTEGER NOT NULL, pid_start INTEGER, state TEXT NOT NULL, on_crash TEXT NOT NULL,
    started REAL NOT NULL, error TEXT
);
CREATE TABLE IF NOT EXISTS op_steps (
    op INTEGER NOT NULL, seq INTEGER NOT NULL, step TEXT NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (op, seq)
);
""" + NET_TABLES + EXPORTS + IMAGE_TABLES


def _statements(script: str) -> list[str]:
    """Split an SQL script into complete statements (comments may hold semicolons)."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    return out


class Store:
    """A connection to `<root>/ladle.db` in WAL mode."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.db = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        except sqlite3.Error as e:
            raise HostError(f"cannot open state database {path}: {e}") from None
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA busy_timeout=30000")
        if self.db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            self._create()
        self.db.execute("PRAGMA synchronous=NORMAL")

    def _create(self) -> None:
        """Create the schema, or migrate an older one, in one transaction; the version is read
        inside it, so two first commands racing do the work once."""
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("BEGIN IMMEDIATE")
        try:
            have = self.db.execute("PRAGMA user_version").fetchone()[0]
            if have > SCHEMA_VERSION:
                raise HostError(f"state database {self.path} is of a newer ladle (schema {have})")
            if have < SCHEMA_VERSION:
                fresh = not self.db.execute("SELECT 1 FROM sqlite_master WHERE name='pots'").fetchone()
                scripts = [_SCHEMA] if fresh else [_MIGRATIONS[v] for v in range(have + 1, SCHEMA_VERSION + 1)]
                for statement in _statements("".join(scripts)):
                    self.db.execute(statement)
                # RFC 4193's random 40-bit Global ID of this root's ULA prefix, made once.
                import secrets
                self.db.execute("INSERT OR IGNORE INTO settings (key, value) VALUES ('ula_global_id', ?)",
                                (secrets.token_hex(5),))
                self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.db.close()

    # Rows ------------------------------------------------------------------------------------

    def get(self, table: str, **key: Any) -> dict[str, Any] | None:
        where = " AND ".join(f"{k}=?" for k in key)
        row = self.db.execute(f"SELECT * FROM {table} WHERE {where}", tuple(key.values())).fetchone()
        return dict(row) if row else None

    def all(self, table: str, order: str = "rowid", **key: Any) -> list[dict[str, Any]]:
        where = (" WHERE " + " AND ".join(f"{k}=?" for k in key)) if key else ""
        sql = f"SELECT * FROM {table}{where} ORDER BY {order}"
        return [dict(r) for r in self.db.execute(sql, tuple(key.values()))]

    def put(self, table: str, key: dict[str, Any], row: dict[str, Any] | None) -> None:
        """Replace the row at `key` with `row` (None deletes it), atomically."""
        where = " AND ".join(f"{k}=?" for k in key)
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute(f"DELETE FROM {table} WHERE {where}", tuple(key.values()))
            if row is not None:
                cols = ",".join(row)
                marks = ",".join("?" * len(row))
                self.db.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", tuple(row.values()))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction: what is read inside it cannot change before it commits (SQLite
        lets one writer in at a time, across threads and processes)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def insert(self, table: str, row: dict[str, Any]) -> None:
        """Add a row; one whose key or unique columns are taken is refused, never replaced."""
        cols, marks = ",".join(row), ",".join("?" * len(row))
        try:
            self.db.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", tuple(row.values()))
        except sqlite3.IntegrityError as e:
            raise StateError(f"{table}: {e}") from None

    def delete(self, table: str, **key: Any) -> None:
        """Remove the rows at `key` (in the caller's transaction, or on its own)."""
        where = " AND ".join(f"{k}=?" for k in key)
        self.db.execute(f"DELETE FROM {table} WHERE {where}", tuple(key.values()))

    def setting(self, key: str, default: str | None = None) -> str | None:
        row = self.get("settings", key=key)
        return row["value"] if row else default

    # Intent log ------------------------------------------------------------------------------

    def op_begin(self, verb: str, subject: str, steps: list[str], on_crash: str) -> int:
        pid = os.getpid()
        self.db.execute("BEGIN IMMEDIATE")
        try:
            cur = self.db.execute(
                "INSERT INTO ops (verb, subject, pid, pid_start, state, on_crash, started)"
                " VALUES (?,?,?,?,?,?,?)",
                (verb, subject, pid, proc.start_time(pid), "running", on_crash, time.time()))
            op = int(cur.lastrowid or 0)
            self.db.executemany("INSERT INTO op_steps (op, seq, step, state) VALUES (?,?,?,?)",
                                [(op, i, s, "pending") for i, s in enumerate(steps)])
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return op

    def op_step(self, op: int, seq: int, state: str) -> None:
        self.db.execute("UPDATE op_steps SET state=? WHERE op=? AND seq=?", (state, op, seq))

    def op_end(self, op: int, state: str, error: str | None = None) -> None:
        """Close an operation; one done or wholly rolled back leaves no rows behind."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            if state in ("done", "rolled-back"):
                self.db.execute("DELETE FROM op_steps WHERE op=?", (op,))
                self.db.execute("DELETE FROM ops WHERE id=?", (op,))
            else:
                self.db.execute("UPDATE ops SET state=?, error=? WHERE id=?", (state, error, op))
                self.db.execute("DELETE FROM op_steps WHERE op=?", (op,))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def drop_op(self, op: int) -> None:
        """Forget an operation (`ladle gc --force` on one whose repair failed)."""
        with self.db:
            self.db.execute("DELETE FROM op_steps WHERE op=?", (op,))
            self.db.execute("DELETE FROM ops WHERE id=?", (op,))

    def stale_ops(self) -> list[dict[str, Any]]:
        """Operations still marked running whose process is gone."""
        rows = self.all("ops", order="id", state="running")
        return [r for r in rows if not proc.alive(r["pid"], r["pid_start"])]

    def op_steps(self, op: int) -> list[dict[str, Any]]:
        return self.all("op_steps", order="seq", op=op)
