"""The spec excerpts shipped in the package (providers/emulators/specs) against the whole
official documents (../shared/specs, and the discovery document inside google-api-python-client):
they are exactly what scripts/spec_excerpts.py cuts today, and every operation and schema they
keep, references followed, is the whole document's. So the emulators, which read the excerpts by
default, accept and refuse the same requests the whole specs do."""

from __future__ import annotations

import json
import posixpath
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import yaml

from slotline.providers.emulators import twilio
from slotline.providers.emulators._google_discovery import default_discovery_path, load_methods
from slotline.providers.emulators._openapi import OpenApiDocument
from slotline.providers.emulators.ghl import DEFAULT_SPEC_DIR as GHL_SPECS
from slotline.providers.emulators.openai import DEFAULT_SPEC_PATH as OPENAI_SPEC
from slotline.providers.emulators.openai import spec_validator

ROOT = Path(__file__).resolve().parents[2]
WHOLE = ROOT.parent / "shared" / "specs"
SHIPPED = ROOT / "providers" / "emulators" / "specs"
OPENAPI = ("twilio/twilio_api_v2010.json", "openai/openapi.yaml", "ghl/apps/calendars.json",
           "ghl/apps/contacts.json")  # fmt: skip


def _read(path: Path) -> Any:
    with path.open("rb") as f:
        return json.load(f) if path.suffix == ".json" else yaml.load(f, Loader=yaml.CSafeLoader)


class _Deref:
    """A document's node with every ``$ref`` replaced by its target (across sibling files);
    a reference back into its own chain stays as ``{"cycle": ...}``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._docs: dict[str, Any] = {}

    def doc(self, name: str) -> Any:
        if name not in self._docs:
            self._docs[name] = _read(self.root / name)
        return self._docs[name]

    def at(self, name: str, pointer: str) -> Any:
        node = self.doc(name)
        for part in pointer.split("/")[1:]:
            node = node[unquote(part).replace("~1", "/").replace("~0", "~")]
        return node

    def full(self, name: str, node: Any, chain: tuple[str, ...] = ()) -> Any:
        if isinstance(node, list):
            return [self.full(name, item, chain) for item in node]
        if not isinstance(node, dict):
            return node
        if isinstance(node.get("$ref"), str):
            target, _, pointer = node["$ref"].partition("#")
            other = posixpath.normpath(posixpath.join(posixpath.dirname(name), target)) \
                if target else name
            key = f"{other}#{pointer}"
            if key in chain:
                return {"cycle": key}
            return self.full(other, self.at(other, pointer), (*chain, key))
        return {k: self.full(name, v, chain) for k, v in node.items()}


def test_the_shipped_excerpts_are_what_the_script_cuts_from_the_whole_specs(
    tmp_path: Path,
) -> None:
    out = tmp_path / "specs"
    subprocess.run([sys.executable, str(ROOT / "scripts/spec_excerpts.py"), "--specs", str(WHOLE),
                    "--out", str(out)], check=True, capture_output=True)  # fmt: skip
    made = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    shipped = sorted(p.relative_to(SHIPPED) for p in SHIPPED.rglob("*") if p.is_file())
    assert made == shipped
    for name in made:
        assert (out / name).read_bytes() == (SHIPPED / name).read_bytes(), name
    for vendor in ("twilio", "openai", "ghl", "google"):  # each vendor's licence beside it
        assert Path(vendor, "LICENSE") in made


@pytest.mark.parametrize("name", OPENAPI)
def test_every_kept_operation_and_schema_is_the_whole_documents(name: str) -> None:
    excerpt, whole = _Deref(SHIPPED), _Deref(WHOLE)
    kept = excerpt.doc(name)
    assert kept["paths"] or kept["components"]["schemas"]
    for template, item in kept["paths"].items():
        pointer = "/paths/" + template.replace("~", "~0").replace("/", "~1")
        assert excerpt.full(name, item) == whole.full(name, whole.at(name, pointer)), template
    for schema in kept.get("components", {}).get("schemas", {}):
        pointer = f"/components/schemas/{schema}"
        assert excerpt.full(name, excerpt.at(name, pointer)) == whole.full(
            name, whole.at(name, pointer)
        ), schema
    assert kept["info"] == whole.doc(name)["info"]


def test_the_emulators_read_the_excerpts_and_refuse_what_the_whole_spec_refuses() -> None:
    for path in (twilio.DEFAULT_SPEC_PATH, OPENAI_SPEC, GHL_SPECS):
        assert path.resolve().is_relative_to(SHIPPED.resolve())
    form = {"To": ["+15550100"], "From": ["+15550101"], "Url": ["https://x.test/twiml"],
            "Timeout": ["soon"], "Colour": ["red"]}  # fmt: skip
    answers = []
    for root in (SHIPPED, WHOLE):
        document = OpenApiDocument(root / "twilio/twilio_api_v2010.json")
        operation = document.operation("POST", twilio.CALLS)
        answers.append(operation.check_form(form)[1])
        assert operation.check_form({k: form[k] for k in ("To", "From", "Url")})[1] == []
    assert answers[0] == answers[1] and len(answers[0]) == 2  # Timeout's type, Colour unknown

    request = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True,
               "temperature": "hot"}  # fmt: skip
    problems = [
        sorted(e.message for e in spec_validator("CreateChatCompletionRequest", path)
               .iter_errors(request))
        for path in (OPENAI_SPEC, WHOLE / "openai/openapi.yaml")
    ]  # fmt: skip
    assert problems[0] == problems[1] != []


def test_the_google_excerpt_serves_the_whole_documents_methods() -> None:
    from importlib.metadata import distribution

    dist = distribution("google-api-python-client")
    document = next(f for f in dist.files or () if str(f).endswith("documents/calendar.v3.json"))
    whole = load_methods(Path(str(dist.locate_file(document))))
    shipped = load_methods(default_discovery_path())
    assert default_discovery_path().resolve().is_relative_to(SHIPPED.resolve())
    assert len(shipped) == 6
    for method_id, method in shipped.items():
        other = whole[method_id]
        assert (method.http_method, method.route, method.scopes, dict(method.parameters)) == (
            other.http_method, other.route, other.scopes, dict(other.parameters))
        assert _request_schema(method.body) == _request_schema(other.body), method_id


def _request_schema(validator: Any) -> Any:
    """The body schema with its ``#/$defs/...`` references followed (the whole document's
    validator carries every schema in ``$defs``; only the reachable ones count)."""
    if validator is None:
        return None
    defs = validator.schema["$defs"]

    def full(node: Any, chain: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [full(item, chain) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            name = node["$ref"].removeprefix("#/$defs/")
            return {"cycle": name} if name in chain else full(defs[name], (*chain, name))
        return {key: full(value, chain) for key, value in node.items()}

    return full({"$ref": validator.schema["$ref"]}, ())
