"""The sandbox CRM's system of record: contacts, accounts, deals, leads and activities in SQLite.

Every write to a contact also appends to a change log (``changes``); the sync worker
reads that log to feed the search index, the way a real CRM's search is fed by CDC.
All access happens on the server's event-loop thread, so one connection suffices.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import sqlite3
import time
from datetime import UTC, datetime
from typing import Any

__all__ = ["SINGULAR", "TABLES", "Store", "now_iso"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY, name TEXT, industry TEXT, website TEXT, country TEXT,
    owner_id TEXT, tenant_id TEXT, extra TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS contacts (
    id TEXT PRIMARY KEY, first_name TEXT, last_name TEXT,
    email TEXT, phone TEXT, title TEXT, account_id TEXT,
    tags TEXT NOT NULL DEFAULT '[]', custom TEXT NOT NULL DEFAULT '{}', tax_id TEXT,
    card_number TEXT, national_id TEXT, iban TEXT,
    owner_id TEXT, tenant_id TEXT, extra TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS contacts_email ON contacts(email);
CREATE INDEX IF NOT EXISTS contacts_account ON contacts(account_id);
CREATE INDEX IF NOT EXISTS contacts_updated ON contacts(updated_at);
CREATE TABLE IF NOT EXISTS deals (
    id TEXT PRIMARY KEY, name TEXT, amount REAL, currency TEXT,
    stage TEXT, account_id TEXT, contact_id TEXT,
    close_date TEXT, tags TEXT NOT NULL DEFAULT '[]',
    owner_id TEXT, tenant_id TEXT, extra TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS deals_account ON deals(account_id);
CREATE TABLE IF NOT EXISTS activities (
    id TEXT PRIMARY KEY, kind TEXT, subject TEXT, contact_id TEXT,
    deal_id TEXT, notes TEXT, tags TEXT NOT NULL DEFAULT '[]', occurred_at TEXT,
    owner_id TEXT, tenant_id TEXT, extra TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL, updated_at TEXT);
CREATE INDEX IF NOT EXISTS activities_contact ON activities(contact_id);
CREATE TABLE IF NOT EXISTS leads (
    id TEXT PRIMARY KEY, first_name TEXT, last_name TEXT,
    email TEXT, company TEXT, status TEXT, source TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    owner_id TEXT, tenant_id TEXT, extra TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS leads_email ON leads(email);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, entity TEXT NOT NULL, entity_id TEXT NOT NULL,
    op TEXT NOT NULL, at REAL NOT NULL);
"""

TABLES = {"contacts": "con", "accounts": "acc", "deals": "deal", "leads": "lead",
          "activities": "act"}
SINGULAR = {"contacts": "contact", "accounts": "account", "deals": "deal", "leads": "lead",
            "activities": "activity"}
_JSON_COLUMNS = {"tags", "custom", "extra"}
_JSON_EMPTY = {"tags": "[]", "custom": "{}", "extra": "{}"}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,32}")
_ROWID = re.compile(rb"[1-9][0-9]{0,18}")
MAX_ROWID = 2**63 - 1  # SQLite's largest integer


def encode_cursor(rowid: int) -> str:
    return base64.urlsafe_b64encode(str(rowid).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int | None:
    """The rowid a cursor from ``encode_cursor`` stands for; None for anything else."""
    if not _CURSOR.fullmatch(cursor) or len(cursor) % 4 == 1:
        return None
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    if not _ROWID.fullmatch(raw) or int(raw) > MAX_ROWID or encode_cursor(int(raw)) != cursor:
        return None
    return int(raw)


class Store:
    """SQLite-backed records; ``path`` is a file or ``:memory:``."""

    def __init__(self, path: str = ":memory:") -> None:
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        if path != ":memory:":
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Bring a file an older sandbox wrote up to this schema, keeping every row and rowid.

        Tables whose columns or NOT NULL constraints differ from ``_SCHEMA`` are rebuilt
        (SQLite cannot drop a constraint in place); columns new to a table start empty,
        and ``adopt()`` then gives old rows their tenant and owner.
        """
        fresh = sqlite3.connect(":memory:")
        fresh.executescript(_SCHEMA)
        rebuilt = False
        for table in TABLES:
            want = [(r[1], r[3]) for r in fresh.execute(f"PRAGMA table_info({table})")]
            have = [(r[1], r[3]) for r in self.db.execute(f"PRAGMA table_info({table})")]
            if want == have:
                continue
            create = fresh.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                                   (table,)).fetchone()[0]
            kept = [name for name, _ in want if name in {n for n, _ in have}]
            cols = ", ".join(["rowid", *kept])
            self.db.execute("BEGIN")
            try:
                self.db.execute(f"ALTER TABLE {table} RENAME TO _old_{table}")
                self.db.execute(create)
                self.db.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _old_{table}")
                for name in _JSON_COLUMNS & ({n for n, _ in want} - set(kept)):
                    self.db.execute(f"UPDATE {table} SET {name} = ?", (_JSON_EMPTY[name],))
                self.db.execute(f"DROP TABLE _old_{table}")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
            rebuilt = True
        fresh.close()
        if rebuilt:
            self.db.executescript(_SCHEMA)  # the indexes went with the old tables

    def adopt(self, tenant_id: str, owner_id: str) -> None:
        """Give records without a tenant (written before tenants existed) this tenant and owner."""
        for table in TABLES:
            self.db.execute(f"UPDATE {table} SET tenant_id = ?, owner_id = COALESCE(owner_id, ?) "
                            "WHERE tenant_id IS NULL", (tenant_id, owner_id))

    def close(self) -> None:
        self.db.close()

    # -- generic record access -------------------------------------------------------

    def get(self, table: str, record_id: str) -> dict[str, Any] | None:
        row = self.db.execute(f"SELECT * FROM {table} WHERE id = ?", (record_id,)).fetchone()
        return _row(row) if row else None

    def insert(self, table: str, values: dict[str, Any], record_id: str | None = None
               ) -> dict[str, Any]:
        record = dict(values)
        record["id"] = record_id or f"{TABLES[table]}_{secrets.token_hex(8)}"
        stamp = now_iso()
        record["created_at"] = record["updated_at"] = stamp
        cols = list(record)
        self.db.execute(
            f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
            [_col(c, record[c]) for c in cols])
        self._changed(table, record["id"], "created")
        return self.get(table, record["id"]) or record

    def update(self, table: str, record_id: str, values: dict[str, Any]) -> dict[str, Any] | None:
        if self.get(table, record_id) is None:
            return None
        values = dict(values)
        values["updated_at"] = now_iso()
        sets = ", ".join(f"{c} = ?" for c in values)
        self.db.execute(f"UPDATE {table} SET {sets} WHERE id = ?",
                        [*(_col(c, v) for c, v in values.items()), record_id])
        self._changed(table, record_id, "updated")
        return self.get(table, record_id)

    def delete(self, table: str, record_id: str) -> bool:
        cursor = self.db.execute(f"DELETE FROM {table} WHERE id = ?", (record_id,))
        if cursor.rowcount:
            self._changed(table, record_id, "deleted")
        return bool(cursor.rowcount)

    def select(self, table: str, filters: dict[str, Any], limit: int,
             after: int | None = None) -> tuple[list[dict[str, Any]], int | None]:
        """Keyset pagination by rowid: returns the page and the last rowid if more follow."""
        where, args = [], []
        for key, value in filters.items():
            if key == "updated_since":
                where.append("updated_at >= ?")
            elif key == "tag":
                where.append("EXISTS (SELECT 1 FROM json_each(tags) WHERE value = ?)")
            elif key == "email_prefix":
                where.append("email LIKE ? ESCAPE '\\'")
                value = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            else:
                where.append(f"{key} = ?")
            args.append(value)
        if after is not None:
            where.append("rowid > ?")
            args.append(after)
        sql = f"SELECT rowid AS _rowid, * FROM {table}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY rowid LIMIT ?"
        rows = self.db.execute(sql, [*args, limit + 1]).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        last = rows[-1]["_rowid"] if more and rows else None
        return [_row(r) for r in rows], last

    def page(self, table: str, page: int, per_page: int, scope: dict[str, str] | None = None
             ) -> tuple[list[dict[str, Any]], int]:
        where, args = _equal(scope)
        total = self.db.execute(f"SELECT COUNT(*) FROM {table}{where}", args).fetchone()[0]
        rows = self.db.execute(f"SELECT * FROM {table}{where} ORDER BY rowid LIMIT ? OFFSET ?",
                               (*args, per_page, (page - 1) * per_page)).fetchall()
        return [_row(r) for r in rows], total

    def find(self, table: str, where: str = "", args: list[Any] | tuple[Any, ...] = (),
             order: str = "rowid", limit: int = -1, offset: int = 0, rowid: bool = False
             ) -> list[dict[str, Any]]:
        """Rows matching an SQL condition the caller built from known columns and ``?`` args
        (with their ``_rowid`` when asked, for keyset paging)."""
        sql = f"SELECT rowid AS _rowid, * FROM {table}"
        if where:
            sql += f" WHERE {where}"
        rows = self.db.execute(f"{sql} ORDER BY {order} LIMIT ? OFFSET ?",
                               [*args, limit, offset]).fetchall()
        return [{**_row(r), "_rowid": r["_rowid"]} if rowid else _row(r) for r in rows]

    def count_where(self, table: str, where: str = "", args: list[Any] | tuple[Any, ...] = ()) -> int:
        sql = f"SELECT COUNT(*) FROM {table}" + (f" WHERE {where}" if where else "")
        return int(self.db.execute(sql, list(args)).fetchone()[0])

    def clear(self) -> None:
        """Delete every record and the change log (the sequence keeps counting)."""
        for table in (*TABLES, "changes"):
            self.db.execute(f"DELETE FROM {table}")

    def count(self, table: str) -> int:
        return int(self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def pipeline(self, scope: dict[str, str] | None = None) -> list[dict[str, Any]]:
        where, args = _equal(scope)
        rows = self.db.execute(
            "SELECT stage, COUNT(*) AS deals, SUM(amount) AS amount, AVG(amount) AS average "
            f"FROM deals{where} GROUP BY stage ORDER BY stage", args).fetchall()
        return [dict(r) for r in rows]

    def activity_summary(self, scope: dict[str, str] | None = None) -> list[dict[str, Any]]:
        where, args = _equal(scope)
        rows = self.db.execute(
            "SELECT kind, COUNT(*) AS activities, COUNT(DISTINCT contact_id) AS contacts "
            f"FROM activities{where} GROUP BY kind ORDER BY kind", args).fetchall()
        return [dict(r) for r in rows]

    # -- change log for the sync worker ------------------------------------------------

    def _changed(self, table: str, record_id: str, op: str) -> None:
        if table == "contacts":
            self.db.execute("INSERT INTO changes (entity, entity_id, op, at) VALUES (?, ?, ?, ?)",
                            (table, record_id, op, time.time()))

    def changes_after(self, seq: int, limit: int = 500) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT seq, entity, entity_id, op, at FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit)).fetchall()

    def last_change(self) -> int:
        """The last sequence number handed out (trimmed or cleared changes included)."""
        row = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
        return int(row[0]) if row else 0

    def trim_changes(self, upto: int) -> None:
        self.db.execute("DELETE FROM changes WHERE seq <= ?", (upto,))


def _equal(scope: dict[str, str] | None) -> tuple[str, list[Any]]:
    """`` WHERE a = ? AND b = ?`` for a scope such as ``{"tenant_id": ...}``; empty for none."""
    if not scope:
        return "", []
    return " WHERE " + " AND ".join(f"{k} = ?" for k in scope), list(scope.values())


def _col(name: str, value: Any) -> Any:
    return json.dumps(value) if name in _JSON_COLUMNS else value


# NaN or Infinity could only come from a file written before the API refused them; read
# them as null, so that one old record cannot break every page that holds it.
_DECODER = json.JSONDecoder(parse_constant=lambda _: None)


def _row(row: sqlite3.Row) -> dict[str, Any]:
    record = {k: row[k] for k in row.keys() if k != "_rowid"}  # noqa: SIM118
    for key in _JSON_COLUMNS & record.keys():
        record[key] = _DECODER.decode(record[key] or _JSON_EMPTY[key])
    return record
