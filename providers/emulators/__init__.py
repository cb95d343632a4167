"""Local servers that speak the vendors' protocols (``slotline emulate``, ``slotline bench``,
the tests); they need the ``emulators`` extra."""

from slotline.providers.extras import require

require("emulators", "the vendor emulators", "jsonschema", "websockets", "google.auth",
        "cryptography")  # fmt: skip
