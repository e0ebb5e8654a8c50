"""The state store's schema migrations: a database of an older ladle opens with its rows intact."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ladle.state.store import Store

# What each migration added, undone newest first: a current database taken back to an older version.
UNDO = {
    8: "ALTER TABLE pots DROP COLUMN image;",
    7: """ALTER TABLE pots DROP COLUMN life; ALTER TABLE runs DROP COLUMN restarts;
          ALTER TABLE runs DROP COLUMN streak; ALTER TABLE runs DROP COLUMN restart_at;
          ALTER TABLE runs DROP COLUMN health; ALTER TABLE runs DROP COLUMN health_fails;""",
    6: "DROP TABLE images;",
    5: "ALTER TABLE pots DROP COLUMN net; DROP TABLE exports;",
}


def older(tmp_path: Path, version: int, script: str = "") -> str:
    """A database of schema `version` (a current one with the later migrations undone), with
    `script` run on it; its path."""
    path = str(tmp_path / "ladle.db")
    Store(path).close()
    db = sqlite3.connect(path)
    db.executescript("".join(UNDO[v] for v in sorted(UNDO, reverse=True) if v > version)
                     + script + f"PRAGMA user_version={version};")
    db.close()
    return path


def test_schema_2_layers_become_active_layers_that_keep_their_layout(tmp_path: Path) -> None:
    path = older(tmp_path, 2, """
        DROP TABLE layers;
        CREATE TABLE layers (key TEXT PRIMARY KEY, kind TEXT NOT NULL, parent TEXT, origin TEXT);
        INSERT INTO layers VALUES ('pots/web', 'overlay', 'bases/b@1', NULL);
    """)
    store = Store(path)
    try:
        assert store.get("layers", key="pots/web") == {
            "key": "pots/web", "kind": "active", "layout": "overlay", "parent": "bases/b@1", "origin": None}
    finally:
        store.close()


def test_schema_4_pots_get_empty_network_settings_and_an_exports_table(tmp_path: Path) -> None:
    path = older(tmp_path, 4, """
        INSERT INTO pots VALUES ('web', 'b', 'multi', 1, NULL, 'true', '{}', '{}', 'none', 'pots/web', 0);
    """)
    store = Store(path)
    try:
        assert store.get("pots", name="web")["net"] == "{}"  # type: ignore[index]
        store.insert("exports", {"host_port": 8080, "proto": "tcp", "pot": "web", "pot_port": 80})
        assert store.all("exports") == [{"host_port": 8080, "proto": "tcp", "pot": "web", "pot_port": 80}]
    finally:
        store.close()


def test_schema_6_pots_get_life_settings_and_runs_a_restart_count(tmp_path: Path) -> None:
    path = older(tmp_path, 6, """
        INSERT INTO pots VALUES ('web', 'b', 'multi', 1, NULL, 'true', '{}', '{}', 'none', 'pots/web', 0, '{}');
        INSERT INTO runs (pot, state) VALUES ('web', 'exited');
    """)
    store = Store(path)
    try:
        assert store.get("pots", name="web")["life"] == "{}"  # type: ignore[index]
        run = store.get("runs", pot="web")
        assert run is not None and run["restarts"] == 0 and run["restart_at"] is None and run["health"] is None
    finally:
        store.close()


def test_schema_7_pots_get_empty_image_settings(tmp_path: Path) -> None:
    path = older(tmp_path, 7, """
        INSERT INTO pots VALUES ('web', 'b', 'multi', 1, NULL, 'true', '{}', '{}', 'none', 'pots/web', 0, '{}', '{}');
    """)
    store = Store(path)
    try:
        assert store.get("pots", name="web")["image"] == "{}"  # type: ignore[index]
    finally:
        store.close()
