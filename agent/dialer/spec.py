"""A campaign's settings as the API and the CLI give them: checked once, stored as JSON.

The shape is the ``POST /api/campaigns`` body (``agent.dialer.api``) less the contacts; the
same names are the query parameters of a ``text/csv`` upload (``window=09:00-20:00&days=mon-fri``).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from slotline.agent.dialer.window import CallingWindow

# Twilio's documented ceiling for an account's calls per second is far above 1 (the default);
# 50 keeps a typo from dialling a list in seconds.
MAX_CPS = 50.0
MAX_CONCURRENCY = 1000


class WindowSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    start: str = "09:00"
    end: str = "20:00"
    days: tuple[str, ...] = ()  # () = every day; names mon..sun or ranges "mon-fri"

    def window(self) -> CallingWindow:
        return CallingWindow.parse(f"{self.start}-{self.end}", self.days)


class CampaignSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    flow: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    name: str = Field(default="", max_length=200)
    cps: float = Field(default=1.0, gt=0, le=MAX_CPS)
    concurrency: int = Field(default=5, ge=1, le=MAX_CONCURRENCY)
    window: WindowSpec = WindowSpec()
    max_attempts: int = Field(default=3, ge=1, le=20)
    retry_after_s: float = Field(default=7200.0, ge=1.0)
    machine: Literal["hangup", "voicemail"] = "hangup"
    voicemail_message: str = Field(default="", max_length=1000)
    timezone: str = "America/New_York"  # for contacts whose zone nothing else tells
    region: str = Field(default="US", min_length=2, max_length=2)  # numbers written nationally
    ring_timeout_s: int = Field(default=30, ge=5, le=600)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(f"{value!r} is not an IANA time zone") from None
        return value

    @field_validator("window")
    @classmethod
    def _window(cls, value: WindowSpec) -> WindowSpec:
        value.window()  # raises ValueError with the reason
        return value

    @field_validator("voicemail_message")
    @classmethod
    def _message(cls, value: str) -> str:
        return value.strip()

    @model_validator(mode="after")
    def _message_for_voicemail(self) -> CampaignSpec:
        if self.machine == "voicemail" and not self.voicemail_message:
            raise ValueError("machine: voicemail needs a voicemail_message")
        return self


def parse_spec(data: Mapping[str, Any]) -> CampaignSpec:
    """``CampaignSpec`` from JSON or query parameters; ``ValueError`` naming every problem."""
    try:
        return CampaignSpec.model_validate(dict(data))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'campaign'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ValueError(problems) from None


def spec_from_query(query: Mapping[str, str]) -> dict[str, Any]:
    """Query parameters of a CSV upload → the JSON shape (``window=09:00-20:00``, ``days``)."""
    data: dict[str, Any] = {k: v for k, v in query.items() if k not in ("window", "days")}
    window: dict[str, Any] = {}
    if "window" in query:
        start, _, end = query["window"].partition("-")
        window.update(start=start, end=end)
    if "days" in query:
        window["days"] = tuple(d for d in query["days"].split(",") if d)
    if window:
        data["window"] = window
    return data
