"""Settings a calendar's vendor holds and Slotline must follow, read once at start-up.

Cal.com's event type has its own length and booking questions; a GoHighLevel calendar has its
own slot length. An adapter that reads such settings is a ``VendorSettingsReader`` (found with
``isinstance``): ``prepare`` reads them (``agent.server.calendars`` calls it when the server
starts, so a wrong id or token stops start-up with the vendor's reason), ``length_min`` is the
vendor's slot length and ``required_variables`` names the flow variable each required vendor field
needs (``agent.booking.vendor_fields`` checks the flows against it before any call).

A vendor calendar that offers several lengths to pick from (a Cal.com variable-length event type)
is also a ``LengthChooser``: the booking action's ``duration_min`` picks one of
``length_options_min`` (``agent.booking.vendor_rules`` refuses one it does not offer).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class VendorSettingsReader(Protocol):
    async def prepare(self) -> object:
        """Read the vendor's settings (once; later calls return what was read)."""
        ...

    @property
    def length_min(self) -> int | None:
        """The vendor's slot length once read (None before ``prepare``)."""
        ...

    def required_variables(self) -> dict[str, str]:
        """Vendor field → the flow variable that must answer it on every booking."""
        ...


@runtime_checkable
class LengthChooser(Protocol):
    @property
    def length_options_min(self) -> tuple[int, ...]:
        """The lengths a booking may pick, once read; () when the length is fixed."""
        ...
