"""A real installed distribution in a temporary folder: a module and its ``.dist-info`` with
entry points, found by ``importlib.metadata`` once the folder is on ``sys.path`` (what
``pip install`` of a plug-in package leaves in site-packages)."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

# A calendar plug-in kept in memory, as a package would ship one (``MemoryCalendar.made``: the
# instances its factory made).
MEMCAL = '''
from slotline.providers.calendars.base import BusyInterval, ProviderBooking


class MemoryCalendar:
    """A calendar kept in memory: what a plug-in package would ship."""

    made = []

    def __init__(self, context):
        self.context = context
        self.bookings = {}
        self.closed = False
        MemoryCalendar.made.append(self)

    async def busy(self, start, end):
        return [BusyInterval(b.start, b.end) for b in self.bookings.values()
                if b.status == "confirmed" and b.start < end and start < b.end]

    async def create(self, request):
        booking = ProviderBooking(request.idempotency_key, request.start, request.end,
                                  "confirmed")
        return self.bookings.setdefault(request.idempotency_key, booking)

    async def get(self, provider_booking_id):
        return self.bookings.get(provider_booking_id)

    async def cancel(self, provider_booking_id, reason=""):
        old = self.bookings[provider_booking_id]
        self.bookings[provider_booking_id] = ProviderBooking(old.provider_booking_id,
                                                             old.start, old.end, "cancelled")
        return self.bookings[provider_booking_id]

    async def aclose(self):
        self.closed = True
'''


def write_distribution(
    folder: Path,
    name: str,
    modules: Mapping[str, str],
    entry_points: Mapping[str, Mapping[str, str]],
) -> Path:
    """``modules``: file name → source; ``entry_points``: group → {name: "module:attr"}."""
    folder.mkdir(parents=True, exist_ok=True)
    for module, source in modules.items():
        (folder / f"{module}.py").write_text(source, encoding="utf-8")
    info = folder / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n", encoding="utf-8"
    )
    lines: list[str] = []
    for group, entries in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{entry} = {target}" for entry, target in entries.items()]
        lines.append("")
    (info / "entry_points.txt").write_text("\n".join(lines), encoding="utf-8")
    (info / "RECORD").write_text("", encoding="utf-8")
    return folder


@contextmanager
def installed(folder: Path, modules: Mapping[str, str]) -> Iterator[None]:
    """``folder`` on ``sys.path`` for the block; its modules forgotten afterwards."""
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        sys.path.remove(str(folder))
        for module in modules:
            sys.modules.pop(module, None)
