"""Google's Calendar v3 discovery document as request validators for the Calendar emulator.

The discovery document (``calendar.v3.json`` from google-api-python-client; the methods the
emulator serves ship in the package as an excerpt) is the machine-readable API: each method's
HTTP verb and path, its parameters (type, enum, bounds, repeated, required), its request schema
and its OAuth scopes. This module turns one method into a ``Method`` the emulator routes and
checks with:
- query parameters: unknown names, repeats of a non-repeated one, wrong types (boolean, integer
  with bounds, enum, RFC 3339 date-time with offset) and missing required ones;
- the body: discovery "schemas" translated to JSON Schema (``$ref`` → ``$defs``; ``any`` → {};
  unknown fields rejected wherever a schema lists its properties, as Google's front end does;
  ``annotations.required`` naming this method → ``required``; ``date``/``date-time`` formats).
Pure and cached: the document is read once per process.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match
from multidict import MultiMapping

from slotline.providers.errors import ConfigError

_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?", re.I)
_OFFSET = re.compile(r"(Z|[+-]\d{2}:\d{2})$", re.I)
FORMATS = FormatChecker(formats=())


@FORMATS.checks("date-time")
def _is_date_time(value: object) -> bool:
    """RFC 3339; the offset may be missing only where a ``timeZone`` says the zone (events)."""
    if not isinstance(value, str) or not _DATE_TIME.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


@FORMATS.checks("date")
def _is_date(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


def default_discovery_path() -> Path:
    """The excerpt shipped in the package (scripts/spec_excerpts.py cuts it from the whole
    document inside google-api-python-client, ``discovery_cache/documents/calendar.v3.json``)."""
    return Path(__file__).with_name("specs") / "google/calendar.v3.json"


@dataclass(frozen=True, slots=True)
class Method:
    id: str  # "calendar.events.insert"
    http_method: str
    route: str  # aiohttp route, e.g. "/calendar/v3/calendars/{calendarId}/events"
    parameters: Mapping[str, Mapping[str, Any]]  # the method's and the API-wide ones
    scopes: frozenset[str]
    body: Draft202012Validator | None  # None: the method takes no request body

    def query_problem(self, query: MultiMapping[str]) -> tuple[str, str] | None:
        """``(parameter, message)`` for the first non-conforming query parameter, else None."""
        for name in dict.fromkeys(query.keys()):
            spec = self.parameters.get(name)
            if spec is None or spec.get("location") != "query":
                return name, f"Unknown parameter '{name}' for {self.id}."
            values = query.getall(name)
            if len(values) > 1 and not spec.get("repeated"):
                return name, f"Parameter '{name}' may be given only once."
            for value in values:
                problem = _value_problem(spec, value)
                if problem:
                    return name, f"Invalid value for parameter '{name}': {value!r} ({problem})."
        for name, spec in self.parameters.items():
            if spec.get("required") and spec.get("location") == "query" and name not in query:
                return name, f"Required parameter '{name}' is missing."
        return None

    def body_problem(self, body: Any) -> str | None:
        if self.body is None:
            return None
        error = best_match(self.body.iter_errors(body))
        if error is None:
            return None
        where = ".".join(str(p) for p in error.absolute_path)
        return f"Invalid value at '{where or 'body'}': {error.message[:300]}"


def _value_problem(spec: Mapping[str, Any], value: str) -> str | None:
    kind = spec.get("type")
    if "enum" in spec and value not in spec["enum"]:
        return "not one of " + ", ".join(spec["enum"])
    if kind == "boolean" and value not in ("true", "false"):
        return "expected true or false"
    if kind == "integer":
        if not re.fullmatch(r"-?\d+", value):
            return "expected an integer"
        if "minimum" in spec and int(value) < int(spec["minimum"]):
            return f"below the minimum {spec['minimum']}"
        if "maximum" in spec and int(value) > int(spec["maximum"]):
            return f"above the maximum {spec['maximum']}"
    if spec.get("format") == "date-time" and not (_is_date_time(value) and _OFFSET.search(value)):
        return "expected an RFC 3339 timestamp with a time zone offset"
    return None


@lru_cache(maxsize=4)
def load_methods(path: Path | None = None) -> Mapping[str, Method]:
    """Every method of the document by id (``calendar.freebusy.query``, ...)."""
    path = path or default_discovery_path()
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(str(path), "discovery document", f"unreadable: {exc}") from None
    prefix = "/" + document["servicePath"]  # "/calendar/v3/"
    methods: dict[str, Method] = {}
    for resource in document["resources"].values():
        for method in resource.get("methods", {}).values():
            request = method.get("request")
            methods[method["id"]] = Method(
                id=method["id"],
                http_method=method["httpMethod"],
                route=prefix + method["path"],
                parameters={**document.get("parameters", {}), **method.get("parameters", {})},
                scopes=frozenset(method.get("scopes", ())),
                body=_validator(document["schemas"], request["$ref"], method["id"])
                if request else None,
            )
    return methods


def _validator(schemas: Mapping[str, Any], name: str, method_id: str) -> Draft202012Validator:
    defs = {key: to_json_schema(schema, method_id) for key, schema in schemas.items()}
    return Draft202012Validator(
        {"$ref": f"#/$defs/{name}", "$defs": defs}, format_checker=FORMATS
    )


def to_json_schema(node: Mapping[str, Any], method_id: str) -> dict[str, Any]:
    """One discovery schema node as JSON Schema, with the requirements of ``method_id``."""
    if "$ref" in node:
        return {"$ref": f"#/$defs/{node['$ref']}"}
    kind = node.get("type")
    if kind in (None, "any"):
        return {}
    out: dict[str, Any] = {"type": kind}
    if "enum" in node:
        out["enum"] = list(node["enum"])
    if node.get("format") in ("date", "date-time"):
        out["format"] = node["format"]
    if kind == "array" and "items" in node:
        out["items"] = to_json_schema(node["items"], method_id)
    if kind == "object":
        properties = node.get("properties")
        if properties is not None:
            out["properties"] = {k: to_json_schema(v, method_id) for k, v in properties.items()}
            required = [k for k, v in properties.items()
                        if method_id in v.get("annotations", {}).get("required", ())]
            if required:
                out["required"] = required
        if "additionalProperties" in node:
            out["additionalProperties"] = to_json_schema(node["additionalProperties"], method_id)
        elif properties is not None:
            out["additionalProperties"] = False
    return out
