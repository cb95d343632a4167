"""Twilio webhooks: the TwiML that connects a call to our media socket, and signatures.

TwiML is built with the ``twilio`` SDK's classes; signatures are checked with its
``RequestValidator`` (HMAC-SHA1 of the full URL plus the sorted POST parameters, base64). The
media WebSocket upgrade is signed the same way, against its ``wss://`` URL with no parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl

from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Connect, VoiceResponse


def stream_twiml(
    stream_url: str,
    parameters: Mapping[str, str],
    *,
    status_callback: str | None = None,
) -> str:
    """``<Response><Connect><Stream url=…>`` with one ``<Parameter>`` per item.

    The stream URL takes no query string (Twilio drops it); per-call data travels as
    parameters and arrives in the ``start`` message's ``customParameters``.
    """
    if "?" in stream_url:
        raise ValueError("a Twilio <Stream> url takes no query string; use parameters")
    response = VoiceResponse()
    connect = Connect()
    stream_attrs: dict[str, str] = {"url": stream_url}
    if status_callback:
        stream_attrs["status_callback"] = status_callback
    stream = connect.stream(**stream_attrs)
    for name, value in parameters.items():
        stream.parameter(name=name, value=value)
    response.append(connect)
    return str(response)


class BadForm(ValueError):
    """A webhook body that is not UTF-8 form data: no Twilio request looks like that."""


def parse_form(body: bytes) -> dict[str, str]:
    """The parameters of an ``application/x-www-form-urlencoded`` body, strictly UTF-8.

    Twilio sends UTF-8 and signs the decoded values, so bytes (raw or percent-encoded) that are
    not UTF-8 cannot belong to a genuine request: they are refused here, as ``BadForm``, rather
    than decoded with replacement characters or left to fail deeper down. A repeated name keeps
    its last value, as the signature check has always seen it.
    """
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise BadForm("the form body is not UTF-8") from exc
    return dict(pairs)


def signature_valid(
    auth_token: str, url: str, params: Mapping[str, str], signature: str | None
) -> bool:
    """True when ``signature`` is Twilio's signature of ``url`` + ``params``."""
    if not signature:
        return False
    validator = RequestValidator(auth_token)
    return bool(validator.validate(url, dict(params), signature))


def sign(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """The signature Twilio would send (used by the simulated caller and tests)."""
    return str(RequestValidator(auth_token).compute_signature(url, dict(params)))


def dial_twiml(number: str) -> str:
    """``<Response><Dial>NUMBER</Dial></Response>``: what a live call is redirected to for a
    transfer (no XML declaration; Twilio's ``Twiml`` parameter takes the document as is)."""
    response = VoiceResponse()
    response.dial(number)
    return str(response.to_xml(xml_declaration=False))
