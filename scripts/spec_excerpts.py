"""Regenerate the vendor spec excerpts that ship inside the package.

The emulators (``slotline emulate``, ``slotline bench``, the tests) check every request against
the vendors' official documents. The whole documents are large test data beside the checkout
(``../shared/specs``, 5 MB); an installed Slotline carries only the parts its emulators read,
unchanged, with each vendor's licence beside them, in ``providers/emulators/specs/``:

    python scripts/spec_excerpts.py                  # from ../shared/specs (and the installed
                                                     # google-api-python-client), in place
    python scripts/spec_excerpts.py --out /tmp/x     # elsewhere (the test compares the two)

An excerpt keeps the document's top-level fields (openapi, info, servers, ...), the listed path
items whole, the listed component schemas, and every component those reach through ``$ref``,
following references into sibling files (GHL's ``../common/common-schemas.json``). Google's
discovery document keeps the listed methods and the schemas their requests reach.
"""

from __future__ import annotations

import argparse
import json
import posixpath
import shutil
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SPECS = ROOT.parent / "shared" / "specs"
DEFAULT_OUT = ROOT / "providers" / "emulators" / "specs"
GOOGLE_DOCUMENT = "discovery_cache/documents/calendar.v3.json"

_TWILIO_ACCOUNT = "/2010-04-01/Accounts/{AccountSid}"


@dataclass(frozen=True)
class Excerpt:
    """What one OpenAPI document keeps: whole path items and named component schemas."""

    path: str  # relative to the specs folder
    paths: tuple[str, ...] = ()
    schemas: tuple[str, ...] = ()


# What the emulators read (providers/emulators/twilio.py, openai.py, ghl.py) and what their
# tests validate answers against.
OPENAPI: tuple[Excerpt, ...] = (
    Excerpt(
        "twilio/twilio_api_v2010.json",
        paths=tuple(_TWILIO_ACCOUNT + p for p in (
            "/Messages.json", "/Messages/{Sid}.json", "/Calls.json", "/Calls/{Sid}.json")),
        schemas=("api.v2010.account.message", "api.v2010.account.call"),
    ),
    Excerpt(
        "openai/openapi.yaml",
        paths=("/chat/completions", "/models"),
        schemas=("CreateChatCompletionRequest", "CreateChatCompletionResponse",
                 "CreateChatCompletionStreamResponse", "ErrorResponse", "ListModelsResponse"),
    ),
    Excerpt(
        "ghl/apps/calendars.json",
        paths=("/calendars/{calendarId}/free-slots", "/calendars/events",
               "/calendars/events/appointments", "/calendars/events/appointments/{eventId}",
               "/calendars/", "/calendars/{calendarId}"),
    ),
    Excerpt("ghl/apps/contacts.json",
            paths=("/contacts/upsert", "/contacts/{contactId}", "/contacts/{contactId}/tags",
                   "/contacts/search/duplicate", "/contacts/{contactId}/appointments")),
)
# The methods the Google Calendar emulator serves (providers/emulators/google_calendar.py).
GOOGLE_METHODS = ("calendar.freebusy.query", "calendar.events.insert", "calendar.events.get",
                  "calendar.events.list", "calendar.events.patch", "calendar.events.delete")
# Where the whole documents come from (as ../shared/specs/README.md records them).
SOURCES = {
    "twilio": ("twilio/twilio-oai : spec/json/twilio_api_v2010.json @ d50069b", "MIT"),
    "openai": ("openai/openai-openapi : openapi.yaml @ f85dbe2", "MIT"),
    "ghl": ("GoHighLevel/highlevel-api-docs : apps/, common/ @ 0af86a4", "CC0-1.0"),
    "google": ("googleapis/google-api-python-client : googleapiclient/" + GOOGLE_DOCUMENT
               + " (the installed release)", "Apache-2.0"),
}
_README = """# Vendor spec excerpts (generated: do not edit)

The parts of the vendors' official API documents that Slotline's emulators check requests
against, unchanged, each with its vendor's licence beside it. Regenerate from the whole
documents with `python scripts/spec_excerpts.py`; a test keeps these equal to its output.

| folder | cut from | licence |
|---|---|---|
"""


# ---- OpenAPI documents ------------------------------------------------------------------------


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _segments(pointer: str) -> list[str]:
    return [unquote(s).replace("~1", "/").replace("~0", "~") for s in pointer.split("/")[1:]]


def _unit(pointer: str) -> tuple[str, ...]:
    """The whole part of a document a pointer lands in: a component (``components/schemas/X``)
    or a top-level entry (``paths//x``), so an excerpt never holds half a schema."""
    parts = _segments(pointer)
    return tuple(parts[:3] if parts[:1] == ["components"] else parts[:2])


def _get(document: Any, unit: tuple[str, ...]) -> Any:
    for part in unit:
        document = document[part]
    return document


def _put(excerpt: dict[str, Any], unit: tuple[str, ...], value: Any) -> None:
    for part in unit[:-1]:
        excerpt = excerpt.setdefault(part, {})
    excerpt[unit[-1]] = value


@dataclass
class _Documents:
    """Whole documents read once; excerpts filled in as references are followed."""

    specs: Path
    whole: dict[str, Any] = field(default_factory=dict)
    kept: dict[str, dict[str, Any]] = field(default_factory=dict)

    def read(self, name: str) -> Any:
        if name not in self.whole:
            path = self.specs / name
            with path.open("rb") as f:
                json_file = path.suffix == ".json"
                document = json.load(f) if json_file else yaml.load(f, Loader=yaml.CSafeLoader)
            self.whole[name] = document
            kept = {k: v for k, v in document.items() if k not in ("paths", "components")}
            self.kept[name] = {**kept, "paths": {}}
        return self.whole[name]

    def keep(self, name: str, unit: tuple[str, ...]) -> None:
        """Keep ``unit`` of document ``name`` and, transitively, what it references."""
        pending = [(name, unit)]
        while pending:
            name, unit = pending.pop()
            document, kept = self.read(name), self.kept[name]
            try:
                _get(kept, unit)
                continue  # already kept
            except KeyError:
                pass
            value = _get(document, unit)
            _put(kept, unit, value)
            for ref in _refs(value):
                target, _, pointer = ref.partition("#")
                other = (posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
                         if target else name)
                pending.append((other, _unit(pointer)))


def _openapi_excerpts(specs: Path) -> dict[str, Any]:
    documents = _Documents(specs)
    for excerpt in OPENAPI:
        documents.read(excerpt.path)
        for template in excerpt.paths:
            documents.keep(excerpt.path, ("paths", template))
        for schema in excerpt.schemas:
            documents.keep(excerpt.path, ("components", "schemas", schema))
    return documents.kept


# ---- Google's discovery document --------------------------------------------------------------


def _google_excerpt(document: Mapping[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in document.items() if k not in ("resources", "schemas")}
    resources: dict[str, Any] = {}
    names: list[str] = []
    for resource_name, resource in document["resources"].items():
        methods = {name: method for name, method in resource.get("methods", {}).items()
                   if method["id"] in GOOGLE_METHODS}  # fmt: skip
        if methods:
            resources[resource_name] = {**resource, "methods": methods}
            names += [m["request"]["$ref"] for m in methods.values() if "request" in m]
    schemas: dict[str, Any] = {}
    while names:
        name = names.pop()
        if name not in schemas:
            schemas[name] = document["schemas"][name]
            names += list(_refs(schemas[name]))
    kept["schemas"] = {name: schemas[name] for name in document["schemas"] if name in schemas}
    kept["resources"] = resources
    return kept


def _google_package() -> tuple[Path, Path]:
    """The discovery document and the licence of the installed google-api-python-client."""
    from importlib.metadata import distribution

    dist = distribution("google-api-python-client")
    files = {str(f): f for f in dist.files or ()}
    license_file = next(f for name, f in files.items() if name.endswith("licenses/LICENSE")
                        or name.endswith(".dist-info/LICENSE"))  # fmt: skip
    document = next(f for name, f in files.items() if name.endswith(GOOGLE_DOCUMENT))
    return Path(str(dist.locate_file(document))), Path(str(dist.locate_file(license_file)))


# ---- writing ------------------------------------------------------------------------------------


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _write(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        text = json.dumps(document, indent=1, ensure_ascii=False) + "\n"
    else:
        text = yaml.dump(document, Dumper=_NoAliases, sort_keys=False, allow_unicode=True,
                         width=100)  # fmt: skip
    path.write_text(text, encoding="utf-8")


def generate(specs: Path, out: Path) -> list[Path]:
    """Write every excerpt and licence under ``out``; the files written."""
    written: list[Path] = []
    for name, document in _openapi_excerpts(specs).items():
        _write(out / name, document)
        written.append(out / name)
    for vendor in ("twilio", "openai", "ghl"):
        shutil.copyfile(specs / vendor / "LICENSE", out / vendor / "LICENSE")
        written.append(out / vendor / "LICENSE")
    document_path, license_path = _google_package()
    google = json.loads(document_path.read_text(encoding="utf-8"))
    _write(out / "google/calendar.v3.json", _google_excerpt(google))
    shutil.copyfile(license_path, out / "google/LICENSE")
    written += [out / "google/calendar.v3.json", out / "google/LICENSE"]
    rows = "".join(f"| {vendor}/ | {source} | {licence} ({vendor}/LICENSE) |\n"
                   for vendor, (source, licence) in SOURCES.items())  # fmt: skip
    (out / "README.md").write_text(_README + rows, encoding="utf-8")
    return [*written, out / "README.md"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", type=Path, default=DEFAULT_SPECS, help="the whole specs")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where excerpts go")
    args = parser.parse_args(argv)
    for path in generate(args.specs.resolve(), args.out):
        print(f"{path.stat().st_size:>9,} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
