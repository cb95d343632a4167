"""The tables as SQLAlchemy Core sees them for queries (the DDL lives in ``migrations``).

Times are stored in UTC: ``timestamptz`` on PostgreSQL; on SQLite naive UTC text in SQLAlchemy's
fixed ``YYYY-MM-DD HH:MM:SS.ffffff`` form, so text order is time order and SQL compares them
correctly. ``UtcDateTime`` refuses naive datetimes on the way in and returns aware UTC ones.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Float, Integer, MetaData, Table, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine


class UtcDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"the store keeps aware datetimes only, got {value.isoformat()}")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _json() -> TypeEngine[Any]:
    return JSON().with_variant(JSONB(), "postgresql")


metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", UtcDateTime, nullable=False),
)

calls = Table(
    "calls",
    metadata,
    Column("call_sid", Text, primary_key=True),
    Column("stream_sid", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("flow", Text, nullable=False),
    Column("node", Text, nullable=False),
    Column("variables", _json(), nullable=False),
    Column("turns", _json(), nullable=False),
    Column("errors", _json(), nullable=False),
    Column("dtmf", _json(), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime),
    Column("llm", _json(), nullable=False),  # model use counts by name ({} = no model)
    Column("direction", Text, nullable=False),  # inbound | outbound
    Column("campaign_id", Text, nullable=False),  # "" = not a campaign's call
    Column("contact_id", Text, nullable=False),
    Column("phone", Text, nullable=False),  # the other party, E.164 as Twilio gave it
    Column("writer", Text, nullable=False),  # host:pid:boot of the process writing it live
    Column("written_at", UtcDateTime),  # its last write (a heartbeat while in progress)
    Column("summary", Text, nullable=False),  # post-call, agent.call.summary ("" until it ends)
    Column("outcome", Text, nullable=False),  # booked | cancelled | ... ("" until it ends)
    Column("path", _json(), nullable=False),  # flow nodes entered, in order ([] = none yet)
    Column("dropped", _json(), nullable=False),  # what the per-call caps left out, by list
)

bookings = Table(
    "bookings",
    metadata,
    Column("id", Text, primary_key=True),
    Column("action", Text, nullable=False),
    Column("calendar", Text, nullable=False),
    Column("provider", Text, nullable=False),
    Column("provider_booking_id", Text, nullable=False),
    Column("start_utc", UtcDateTime, nullable=False),
    Column("end_utc", UtcDateTime, nullable=False),
    Column("status", Text, nullable=False),
    Column("attendee", _json(), nullable=False),
    Column("phone_key", Text, nullable=False),
    Column("email_key", Text, nullable=False),  # records.email_key of the attendee's e-mail
    Column("call_sid", Text, nullable=False),
    Column("fields", _json(), nullable=False),
    Column("idempotency_key", Text, nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

holds = Table(
    "holds",
    metadata,
    Column("key", Text, primary_key=True),
    Column("calendar", Text, primary_key=True),
    Column("start_utc", UtcDateTime, nullable=False),
    Column("end_utc", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("owner", Text, nullable=False),
)

reminder_jobs = Table(
    "reminder_jobs",
    metadata,
    Column("id", Text, primary_key=True),
    Column("booking_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("due_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime),
    Column("claimed_by", Text),
    Column("claimed_at", UtcDateTime),
    Column("attempts", Integer, nullable=False),  # claims so far (a claim is an attempt)
    Column("retry_at", UtcDateTime),  # a failed send waits until then
    Column("failed_at", UtcDateTime),  # given up: never claimed again
    Column("last_error", Text, nullable=False),
)

round_robin = Table(
    "round_robin",
    metadata,
    Column("action", Text, primary_key=True),
    Column("calendar", Text, primary_key=True),
    Column("count", Integer, nullable=False),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("flow", Text, nullable=False),
    Column("status", Text, nullable=False),  # running | paused | done | cancelled
    Column("settings", _json(), nullable=False),  # agent.dialer.spec.CampaignSpec as JSON
    Column("next_dial_at", UtcDateTime, nullable=False),  # pacing: no dial before this
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

campaign_contacts = Table(
    "campaign_contacts",
    metadata,
    Column("id", Text, primary_key=True),
    Column("campaign_id", Text, nullable=False),
    Column("line", Integer, nullable=False),
    Column("phone", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("email", Text, nullable=False),
    Column("timezones", _json(), nullable=False),
    Column("variables", _json(), nullable=False),
    Column("state", Text, nullable=False),  # pending | dialing | done
    Column("outcome", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_at", UtcDateTime, nullable=False),
    Column("booking_id", Text),
    Column("updated_at", UtcDateTime, nullable=False),
)

call_attempts = Table(
    "call_attempts",
    metadata,
    Column("id", Text, primary_key=True),
    Column("call_sid", Text, unique=True),  # None until Twilio answered the create
    Column("campaign_id", Text, nullable=False),  # "" = a single call (POST /api/calls)
    Column("contact_id", Text, nullable=False),
    Column("number", Integer, nullable=False),  # 1 = the contact's first attempt
    Column("phone", Text, nullable=False),
    Column("flow", Text, nullable=False),
    Column("variables", _json(), nullable=False),
    Column("status", Text, nullable=False),  # dialing, then Twilio's CallStatus
    Column("answered_by", Text, nullable=False),
    Column("machine_action", Text, nullable=False),  # "" | hangup | voicemail
    Column("events", _json(), nullable=False),  # status callbacks as received
    Column("duration_s", Integer),
    Column("session_status", Text, nullable=False),  # the media session's end: completed...
    Column("outcome", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("booking_id", Text),
    Column("worker", Text, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("answered_at", UtcDateTime),
    Column("final_at", UtcDateTime),  # Twilio's final status came
    Column("session_ended_at", UtcDateTime),
    Column("settled_at", UtcDateTime),  # outcome decided; the contact moved on
    Column("updated_at", UtcDateTime, nullable=False),
)

do_not_call = Table(
    "do_not_call",
    metadata,
    Column("phone", Text, primary_key=True),  # E.164
    Column("source", Text, nullable=False),  # file | api | voice
    Column("call_sid", Text, nullable=False),
    Column("added_at", UtcDateTime, nullable=False),
)

call_webhook_jobs = Table(
    "call_webhook_jobs",
    metadata,
    # the Idempotency-Key: the call's sid (one call.ended per call) or the waitlist entry's id
    Column("id", Text, primary_key=True),
    Column("event", Text, nullable=False),  # call.ended | waitlist.added (agent.call.webhook)
    Column("payload", Text, nullable=False),  # the exact JSON text POSTed on every attempt
    Column("attempts", Integer, nullable=False),  # claims so far (a claim is an attempt)
    Column("next_at", UtcDateTime, nullable=False),  # not claimable before (back-off)
    Column("created_at", UtcDateTime, nullable=False),
    Column("delivered_at", UtcDateTime),  # a 2xx came: never sent again
    Column("failed_at", UtcDateTime),  # given up after max_attempts: never claimed again
    Column("last_error", Text, nullable=False),
    Column("claimed_by", Text),
    Column("claimed_at", UtcDateTime),
)

stream_nonces = Table(
    "stream_nonces",
    metadata,
    Column("nonce", Text, primary_key=True),  # a stream token's nonce, admitted once
    Column("expires_at", UtcDateTime, nullable=False),  # the token's expiry: forgotten after
)

recordings = Table(
    "recordings",
    metadata,
    Column("call_sid", Text, primary_key=True),
    Column("path", Text, nullable=False),  # the WAV file (agent.server.recording_store)
    Column("duration_s", Float, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),  # the retention sweep goes by it
)


waitlist = Table(
    "waitlist",
    metadata,
    Column("id", Text, primary_key=True),
    Column("action", Text, nullable=False),  # the booking action waited for ("" = any)
    Column("name", Text, nullable=False),
    Column("phone", Text, nullable=False),  # E.164 or ""
    Column("email", Text, nullable=False),
    Column("timezone", Text, nullable=False),  # the caller's IANA zone or ""
    Column("preference", Text, nullable=False),  # what the caller asked for, as said
    Column("notes", Text, nullable=False),
    Column("source", Text, nullable=False),  # voice | api
    Column("call_sid", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # off: no webhook URL when added; "": its waitlist.added event is the call_webhook_jobs row
    # of the same id (migration 13); sent | failed: <reason>: the outcome, before migration 13
    Column("webhook_status", Text, nullable=False),
)
