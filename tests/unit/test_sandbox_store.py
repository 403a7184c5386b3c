"""The sandbox's store: files an older sandbox wrote are brought up to date, rows and rowids kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from crmpulse.sandbox.engine import Sandbox, SandboxSettings
from crmpulse.sandbox.store import Store

# The schema of the sandbox before tenants, owners and vendor fields (commit f040761).
OLD_SCHEMA = """
CREATE TABLE accounts (id TEXT PRIMARY KEY, name TEXT NOT NULL, industry TEXT, website TEXT, country TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE contacts (id TEXT PRIMARY KEY, first_name TEXT NOT NULL, last_name TEXT NOT NULL,
    email TEXT NOT NULL, phone TEXT, title TEXT, account_id TEXT REFERENCES accounts(id),
    tags TEXT NOT NULL DEFAULT '[]', custom TEXT NOT NULL DEFAULT '{}', tax_id TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE INDEX contacts_email ON contacts(email);
CREATE TABLE deals (id TEXT PRIMARY KEY, name TEXT NOT NULL, amount REAL NOT NULL, currency TEXT NOT NULL,
    stage TEXT NOT NULL, account_id TEXT REFERENCES accounts(id), contact_id TEXT,
    close_date TEXT, tags TEXT NOT NULL DEFAULT '[]', created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE activities (id TEXT PRIMARY KEY, kind TEXT NOT NULL, subject TEXT NOT NULL, contact_id TEXT,
    deal_id TEXT, notes TEXT, tags TEXT NOT NULL DEFAULT '[]', occurred_at TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE leads (id TEXT PRIMARY KEY, first_name TEXT NOT NULL, last_name TEXT NOT NULL,
    email TEXT NOT NULL, company TEXT, status TEXT NOT NULL, source TEXT,
    tags TEXT NOT NULL DEFAULT '[]', created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, entity TEXT NOT NULL, entity_id TEXT NOT NULL,
    op TEXT NOT NULL, at REAL NOT NULL);
"""


def old_file(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.execute("INSERT INTO contacts (rowid, id, first_name, last_name, email, tags, created_at, updated_at) "
               "VALUES (7, 'con_00000000000000aa', 'Old', 'Row', 'old@t.example', '[\"x\"]', 't', 't')")
    db.execute("INSERT INTO activities (id, kind, subject, occurred_at, created_at) "
               "VALUES ('act_00000000000000aa', 'call', 'Old call', '2026-01-01', 't')")
    db.commit()
    db.close()


def test_a_file_an_older_sandbox_wrote_keeps_its_rows_and_rowids_and_gains_the_new_columns(tmp_path: Path) -> None:
    old_file(tmp_path / "old.db")
    store = Store(str(tmp_path / "old.db"))
    contact = store.get("contacts", "con_00000000000000aa")
    assert contact is not None and contact["tags"] == ["x"] and contact["extra"] == {}
    assert contact["card_number"] is None and contact["tenant_id"] is None
    assert store.db.execute("SELECT rowid FROM contacts").fetchone()[0] == 7
    assert store.db.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'contacts_email'").fetchone()[0] == 1
    # a vendor dialect may leave what the native API requires empty
    store.insert("contacts", {"last_name": "Only"})
    store.insert("activities", {"subject": "no kind"})
    store.close()


def test_the_sandbox_gives_old_records_the_first_tenant_and_a_full_owner(tmp_path: Path) -> None:
    old_file(tmp_path / "old.db")
    sb = Sandbox(SandboxSettings(db=str(tmp_path / "old.db"), seed=0))
    for table, record_id in (("contacts", "con_00000000000000aa"), ("activities", "act_00000000000000aa")):
        record = sb.get(table, record_id)
        assert record is not None
        assert (record["tenant_id"], record["owner_id"]) == ("ten_00000000000005a1", sb.user("rep@sandbox.example").id)  # type: ignore[union-attr]
    sb.store.close()


def schema_version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA schema_version").fetchone()[0])
    finally:
        db.close()


def test_a_current_file_is_left_as_it_is_and_an_old_one_is_rebuilt(tmp_path: Path) -> None:
    Store(str(tmp_path / "new.db")).close()
    before = schema_version(tmp_path / "new.db")
    Store(str(tmp_path / "new.db")).close()
    assert schema_version(tmp_path / "new.db") == before  # nothing rebuilt
    old_file(tmp_path / "old.db")
    before = schema_version(tmp_path / "old.db")
    Store(str(tmp_path / "old.db")).close()
    assert schema_version(tmp_path / "old.db") > before
