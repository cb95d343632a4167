"""Store URLs as users write them, mapped to SQLAlchemy's async drivers.

``sqlite:///slotline.db`` (relative) or ``sqlite:////var/lib/slotline.db`` (absolute) → aiosqlite;
``postgresql://user@host/db`` (``postgres://`` too, query options kept) → asyncpg.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from slotline.providers.errors import ConfigError

Dialect = Literal["sqlite", "postgresql"]

_DRIVERS: dict[str, tuple[Dialect, str]] = {
    "sqlite": ("sqlite", "sqlite+aiosqlite"),
    "postgresql": ("postgresql", "postgresql+asyncpg"),
    "postgres": ("postgresql", "postgresql+asyncpg"),
}


def async_url(url: str) -> tuple[Dialect, URL]:
    """The dialect and the async-driver URL for a ``store.url`` setting (ConfigError if bad)."""
    scheme = url.partition("://")[0]
    known = _DRIVERS.get(scheme)
    if known is None:
        raise ConfigError(
            "store", "url", f"{url.split('@')[-1]!r}: use sqlite:/// or postgresql://"
        )
    dialect, driver = known
    try:
        parsed = make_url(driver + url[len(scheme) :])
    except ArgumentError as error:
        raise ConfigError("store", "url", f"not a database URL ({error})") from None
    if dialect == "sqlite" and parsed.database in (None, "", ":memory:"):
        # Every pooled connection would open its own empty in-memory database.
        raise ConfigError("store", "url", "SQLite needs a file path, e.g. sqlite:///slotline.db")
    if dialect == "postgresql" and not parsed.database:
        raise ConfigError("store", "url", "name the database, e.g. postgresql://user@host/slotline")
    return dialect, parsed
