"""Per-message cost of the Twilio Media Streams codec on its hot paths.

At 200 concurrent calls the server parses 10,000 inbound media frames a second and encodes
about as many outbound ones, so these numbers times 10,000 are the CPU share per second.

    cd /work/main && /work/venv/bin/python -m bench.twilio_codec_cost [--iterations N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import timeit
from collections.abc import Callable

from slotline.providers.telephony.twilio_media import (
    InboundStream,
    encode_connected,
    encode_inbound_media,
    encode_media,
    encode_start,
    parse_inbound,
    parse_outbound,
)

STREAM_SID = "MZ18ad3ab5a668481ce02b83e7395059f0"
ACCOUNT_SID = "AC25e16e9a716a4a1786a7c83f58e30482"
CALL_SID = "CA2f8b5c14c95e6f5e2fcb8f2b8c5d2f0a"


def _cost_us(fn: Callable[[], object], iterations: int, repeats: int = 7) -> tuple[float, float]:
    """Median and best per-call cost in microseconds over ``repeats`` timing runs."""
    runs = timeit.repeat(fn, number=iterations, repeat=repeats)
    per_call = [run / iterations * 1e6 for run in runs]
    return statistics.median(per_call), min(per_call)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=100_000)
    args = parser.parse_args()

    payload = os.urandom(160)
    inbound_text = encode_inbound_media(STREAM_SID, 42, 41, 800, payload)
    inbound_bytes = inbound_text.encode()
    outbound_text = encode_media(STREAM_SID, payload)
    stream = InboundStream()
    stream.receive(encode_connected())
    stream.receive(encode_start(STREAM_SID, ACCOUNT_SID, CALL_SID))

    cases: list[tuple[str, Callable[[], object]]] = [
        ("parse_inbound(media, str)", lambda: parse_inbound(inbound_text)),
        ("parse_inbound(media, bytes)", lambda: parse_inbound(inbound_bytes)),
        ("InboundStream.receive(media)", lambda: stream.receive(inbound_text)),
        ("encode_media(160 B)", lambda: encode_media(STREAM_SID, payload)),
        ("encode_inbound_media(160 B)", lambda: encode_inbound_media(STREAM_SID, 1, 1, 0, payload)),
        ("parse_outbound(media 160 B)", lambda: parse_outbound(outbound_text)),
    ]
    print(f"{'operation':32} {'median µs':>10} {'best µs':>9} {'CPU % at 10k/s':>15}")
    for name, fn in cases:
        median_us, best_us = _cost_us(fn, args.iterations)
        print(f"{name:32} {median_us:10.2f} {best_us:9.2f} {median_us * 10_000 / 1e6 * 100:15.2f}")


if __name__ == "__main__":
    main()
