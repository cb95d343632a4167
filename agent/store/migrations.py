"""Versioned schema migrations, applied at start-up under a lock, each exactly once.

``schema_version`` lists the versions applied. ``migrate`` takes a lock every process agrees on
(PostgreSQL: a transaction-scoped advisory lock; SQLite: ``BEGIN IMMEDIATE``, the database's write
lock), reads the version, applies the newer migrations and records them, all in one transaction
(DDL is transactional on both databases), so a crash leaves the old schema and two processes
starting together migrate once. Never edit a released migration: append a new one.

Double booking is refused by the database itself. PostgreSQL: an exclusion constraint on
(calendar, time range) over confirmed bookings (``btree_gist`` gives ``=`` on text to GiST).
SQLite has no exclusion constraints; triggers abort any write that would overlap (the store also
checks first, under its write lock, to answer with a clean ``SlotTaken``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, insert, select

from slotline.agent.store.db import Database
from slotline.agent.store.schema import schema_version
from slotline.providers.errors import ConfigError

logger = logging.getLogger(__name__)

_LOCK_ID = 0x51_07_11_4E  # any constant: every Slotline process takes the same advisory lock
_TYPES = {
    "postgresql": {"ts": "TIMESTAMPTZ", "json": "JSONB"},
    "sqlite": {"ts": "TEXT", "json": "TEXT"},  # UTC text / JSON text, see agent.store.schema
}
SLOT_TAKEN_MESSAGE = "slotline: slot taken"  # the SQLite triggers' abort message


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    common: tuple[str, ...]  # templates: {ts} and {json} become the dialect's types
    postgresql: tuple[str, ...] = ()
    sqlite: tuple[str, ...] = ()

    def statements(self, dialect: str) -> tuple[str, ...]:
        own = self.postgresql if dialect == "postgresql" else self.sqlite
        return tuple(sql.format(**_TYPES[dialect]) for sql in self.common) + own


def _no_overlap_trigger(name: str, table: str, event: str) -> str:
    """A SQLite trigger aborting a write whose row would overlap another on its calendar
    (bookings: confirmed ones only; holds: any other key's)."""
    if table == "bookings":
        when, others = "NEW.status = 'confirmed' AND ", "status = 'confirmed' AND id <> NEW.id"
    else:
        when, others = "", "key <> NEW.key"
    return (
        f"CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW WHEN {when}EXISTS ("
        f"SELECT 1 FROM {table} WHERE calendar = NEW.calendar AND {others} "
        "AND start_utc < NEW.end_utc AND end_utc > NEW.start_utc) "
        f"BEGIN SELECT RAISE(ABORT, '{SLOT_TAKEN_MESSAGE}'); END"
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "calls, bookings, holds, reminder jobs, round-robin counts",
        common=(
            """CREATE TABLE calls (
                call_sid TEXT PRIMARY KEY,
                stream_sid TEXT NOT NULL DEFAULT '',
                status TEXT NOT NULL,
                flow TEXT NOT NULL,
                node TEXT NOT NULL DEFAULT '',
                variables {json} NOT NULL,
                turns {json} NOT NULL,
                errors {json} NOT NULL,
                dtmf {json} NOT NULL,
                started_at {ts} NOT NULL,
                ended_at {ts}
            )""",
            "CREATE INDEX calls_started ON calls (started_at)",
            """CREATE TABLE bookings (
                id TEXT PRIMARY KEY,
                action TEXT NOT NULL,
                calendar TEXT NOT NULL,
                provider TEXT NOT NULL,
                provider_booking_id TEXT NOT NULL,
                start_utc {ts} NOT NULL,
                end_utc {ts} NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('confirmed', 'cancelled')),
                attendee {json} NOT NULL,
                phone_key TEXT NOT NULL DEFAULT '',
                call_sid TEXT NOT NULL DEFAULT '',
                fields {json} NOT NULL,
                idempotency_key TEXT NOT NULL UNIQUE,
                created_at {ts} NOT NULL,
                updated_at {ts} NOT NULL,
                CHECK (end_utc > start_utc)
            )""",
            "CREATE INDEX bookings_calendar_start ON bookings (calendar, start_utc)",
            "CREATE INDEX bookings_phone ON bookings (phone_key, start_utc)",
            "CREATE INDEX bookings_call ON bookings (call_sid)",
            """CREATE TABLE holds (
                key TEXT NOT NULL,
                calendar TEXT NOT NULL,
                start_utc {ts} NOT NULL,
                end_utc {ts} NOT NULL,
                expires_at {ts} NOT NULL,
                owner TEXT NOT NULL DEFAULT '',
                PRIMARY KEY (key, calendar),
                CHECK (end_utc > start_utc)
            )""",
            """CREATE TABLE reminder_jobs (
                id TEXT PRIMARY KEY,
                booking_id TEXT NOT NULL REFERENCES bookings (id),
                kind TEXT NOT NULL,
                due_at {ts} NOT NULL,
                sent_at {ts},
                claimed_by TEXT,
                claimed_at {ts},
                UNIQUE (booking_id, kind)
            )""",
            "CREATE INDEX reminder_jobs_due ON reminder_jobs (due_at)",
            """CREATE TABLE round_robin (
                action TEXT NOT NULL,
                calendar TEXT NOT NULL,
                count INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (action, calendar)
            )""",
        ),
        postgresql=(
            "CREATE EXTENSION IF NOT EXISTS btree_gist",
            "ALTER TABLE bookings ADD CONSTRAINT bookings_no_overlap EXCLUDE USING gist "
            "(calendar WITH =, tstzrange(start_utc, end_utc) WITH &&) "
            "WHERE (status = 'confirmed')",
            "ALTER TABLE holds ADD CONSTRAINT holds_no_overlap EXCLUDE USING gist "
            "(calendar WITH =, tstzrange(start_utc, end_utc) WITH &&)",
        ),
        sqlite=(
            _no_overlap_trigger("bookings_no_overlap_insert", "bookings", "INSERT"),
            _no_overlap_trigger(
                "bookings_no_overlap_update",
                "bookings",
                "UPDATE OF start_utc, end_utc, status, calendar",
            ),
            _no_overlap_trigger("holds_no_overlap_insert", "holds", "INSERT"),
        ),
    ),
    Migration(
        2,
        "reminder jobs: attempts, retry time, failure and its reason",
        common=(
            "ALTER TABLE reminder_jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE reminder_jobs ADD COLUMN retry_at {ts}",
            "ALTER TABLE reminder_jobs ADD COLUMN failed_at {ts}",
            "ALTER TABLE reminder_jobs ADD COLUMN last_error TEXT NOT NULL DEFAULT ''",
        ),
    ),
    Migration(
        3,
        "calls: the call's use of the language model",
        # '{}' is an empty JSON object as JSONB (PostgreSQL casts the literal) and as JSON text
        common=("ALTER TABLE calls ADD COLUMN llm {json} NOT NULL DEFAULT '{{}}'",),
    ),
    Migration(
        4,
        "outbound: campaigns, their contacts, call attempts, the do-not-call list; call direction",
        common=(
            "ALTER TABLE calls ADD COLUMN direction TEXT NOT NULL DEFAULT 'inbound'",
            "ALTER TABLE calls ADD COLUMN campaign_id TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE calls ADD COLUMN contact_id TEXT NOT NULL DEFAULT ''",
            """CREATE TABLE campaigns (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL DEFAULT '',
                flow TEXT NOT NULL,
                status TEXT NOT NULL
                    CHECK (status IN ('running', 'paused', 'done', 'cancelled')),
                settings {json} NOT NULL,
                next_dial_at {ts} NOT NULL,
                created_at {ts} NOT NULL,
                updated_at {ts} NOT NULL
            )""",
            """CREATE TABLE campaign_contacts (
                id TEXT PRIMARY KEY,
                campaign_id TEXT NOT NULL REFERENCES campaigns (id),
                line INTEGER NOT NULL,
                phone TEXT NOT NULL,
                name TEXT NOT NULL DEFAULT '',
                email TEXT NOT NULL DEFAULT '',
                timezones {json} NOT NULL,
                variables {json} NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('pending', 'dialing', 'done')),
                outcome TEXT NOT NULL,
                reason TEXT NOT NULL DEFAULT '',
                attempts INTEGER NOT NULL DEFAULT 0,
                next_at {ts} NOT NULL,
                booking_id TEXT,
                updated_at {ts} NOT NULL,
                UNIQUE (campaign_id, line)
            )""",
            "CREATE INDEX campaign_contacts_due ON campaign_contacts (campaign_id, state, next_at)",
            """CREATE TABLE call_attempts (
                id TEXT PRIMARY KEY,
                call_sid TEXT UNIQUE,
                campaign_id TEXT NOT NULL DEFAULT '',
                contact_id TEXT NOT NULL DEFAULT '',
                number INTEGER NOT NULL,
                phone TEXT NOT NULL,
                flow TEXT NOT NULL,
                variables {json} NOT NULL,
                status TEXT NOT NULL,
                answered_by TEXT NOT NULL DEFAULT '',
                machine_action TEXT NOT NULL DEFAULT '',
                events {json} NOT NULL,
                duration_s INTEGER,
                session_status TEXT NOT NULL DEFAULT '',
                outcome TEXT NOT NULL DEFAULT '',
                reason TEXT NOT NULL DEFAULT '',
                booking_id TEXT,
                worker TEXT NOT NULL DEFAULT '',
                started_at {ts} NOT NULL,
                answered_at {ts},
                final_at {ts},
                session_ended_at {ts},
                settled_at {ts},
                updated_at {ts} NOT NULL
            )""",
            "CREATE INDEX call_attempts_live ON call_attempts (campaign_id, settled_at)",
            "CREATE INDEX call_attempts_contact ON call_attempts (contact_id, number)",
            """CREATE TABLE do_not_call (
                phone TEXT PRIMARY KEY,
                source TEXT NOT NULL,
                call_sid TEXT NOT NULL DEFAULT '',
                added_at {ts} NOT NULL
            )""",
        ),
    ),
    Migration(
        5,
        "calls: the process writing a live call and when it last wrote (kill -9 recovery)",
        common=(
            "ALTER TABLE calls ADD COLUMN writer TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE calls ADD COLUMN written_at {ts}",
            "CREATE INDEX calls_in_progress ON calls (written_at) WHERE status = 'in-progress'",
        ),
    ),
    Migration(
        6,
        "recordings: each recorded call's WAV file (agent.server.recording_store)",
        common=(
            """CREATE TABLE recordings (
                call_sid TEXT PRIMARY KEY,
                path TEXT NOT NULL,
                duration_s DOUBLE PRECISION NOT NULL,
                created_at {ts} NOT NULL
            )""",
            "CREATE INDEX recordings_created ON recordings (created_at)",
        ),
    ),
    Migration(
        7,
        "calls: post-call summary and outcome; the end-of-call webhook's jobs (one per call)",
        common=(
            "ALTER TABLE calls ADD COLUMN summary TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE calls ADD COLUMN outcome TEXT NOT NULL DEFAULT ''",
            # payload: the exact JSON text POSTed (every attempt sends the same bytes)
            """CREATE TABLE call_webhook_jobs (
                id TEXT PRIMARY KEY,
                payload TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                next_at {ts} NOT NULL,
                created_at {ts} NOT NULL,
                delivered_at {ts},
                failed_at {ts},
                last_error TEXT NOT NULL DEFAULT '',
                claimed_by TEXT,
                claimed_at {ts}
            )""",
            "CREATE INDEX call_webhook_jobs_due ON call_webhook_jobs (next_at) "
            "WHERE delivered_at IS NULL AND failed_at IS NULL",
        ),
    ),
    Migration(
        8,
        "calls: the flow nodes the call entered, in order (the console draws them)",
        # '[]' is an empty JSON array as JSONB (PostgreSQL casts the literal) and as JSON text
        common=("ALTER TABLE calls ADD COLUMN path {json} NOT NULL DEFAULT '[]'",),
    ),
    Migration(
        9,
        "calls: the other party's number (the caller's; an outbound call's callee)",
        common=("ALTER TABLE calls ADD COLUMN phone TEXT NOT NULL DEFAULT ''",),
    ),
    Migration(
        10,
        "calls: what the per-call caps left out (errors, dtmf, turns, path), as the live log says",
        common=("ALTER TABLE calls ADD COLUMN dropped {json} NOT NULL DEFAULT '{{}}'",),
    ),
    Migration(
        11,
        "stream_nonces: stream tokens admitted, so each is used once across workers and servers",
        common=(
            """CREATE TABLE stream_nonces (
                nonce TEXT PRIMARY KEY,
                expires_at {ts} NOT NULL
            )""",
            "CREATE INDEX stream_nonces_expiry ON stream_nonces (expires_at)",
        ),
    ),
    Migration(
        12,
        "waitlist: callers waiting for a time when none fitted (agent.waitlist)",
        common=(
            """CREATE TABLE waitlist (
                id TEXT PRIMARY KEY,
                action TEXT NOT NULL,
                name TEXT NOT NULL,
                phone TEXT NOT NULL,
                email TEXT NOT NULL,
                timezone TEXT NOT NULL,
                preference TEXT NOT NULL,
                notes TEXT NOT NULL,
                source TEXT NOT NULL,
                call_sid TEXT NOT NULL,
                created_at {ts} NOT NULL,
                webhook_status TEXT NOT NULL DEFAULT ''
            )""",
            "CREATE INDEX waitlist_created ON waitlist (action, created_at)",
            # one entry per call and action: a retried flow step adds nobody twice
            "CREATE UNIQUE INDEX waitlist_call ON waitlist (call_sid, action) "
            "WHERE call_sid <> ''",
        ),
    ),
    Migration(
        13,
        "call_webhook_jobs becomes the webhook outbox: each job names its event (call.ended, "
        "waitlist.added), so a waitlist entry's event is retried as a call's is",
        common=(
            "ALTER TABLE call_webhook_jobs ADD COLUMN event TEXT NOT NULL DEFAULT 'call.ended'",
        ),
    ),
    Migration(
        14,
        "bookings: the attendee's e-mail as a key (trimmed, lower-cased), so a caller is found "
        "by e-mail as by phone; back-filled from the attendee of the bookings before it",
        common=(
            "ALTER TABLE bookings ADD COLUMN email_key TEXT NOT NULL DEFAULT ''",
            "CREATE INDEX bookings_email ON bookings (email_key, start_utc)",
        ),
        # records.email_key in SQL: str.strip()'s ASCII whitespace, then lower()
        postgresql=(
            "UPDATE bookings SET email_key = lower(btrim(attendee ->> 'email', "
            "' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13))) "
            "WHERE attendee ->> 'email' IS NOT NULL",
        ),
        sqlite=(
            "UPDATE bookings SET email_key = lower(trim(json_extract(attendee, '$.email'), "
            "' ' || char(9, 10, 11, 12, 13))) "
            "WHERE json_extract(attendee, '$.email') IS NOT NULL",
        ),
    ),
)


async def migrate(db: Database) -> int:
    """Bring the schema up to date; returns the version now in force."""
    latest = MIGRATIONS[-1].version
    async with db.write() as conn:
        if db.dialect == "postgresql":
            await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_ID})")
        await conn.exec_driver_sql(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
            f"applied_at {_TYPES[db.dialect]['ts']} NOT NULL)"
        )
        current = (await conn.execute(select(func.max(schema_version.c.version)))).scalar()
        current = current or 0
        if current > latest:
            raise ConfigError(
                "store", "url", f"schema version {current} is newer than this Slotline ({latest})"
            )
        for migration in MIGRATIONS:
            if migration.version <= current:
                continue
            logger.info(
                "store: applying migration %d (%s)", migration.version, migration.description
            )
            for sql in migration.statements(db.dialect):
                await conn.exec_driver_sql(sql)
            await conn.execute(
                insert(schema_version).values(version=migration.version, applied_at=_utc_now())
            )
    return latest


def _utc_now() -> datetime:
    return datetime.now(UTC)
