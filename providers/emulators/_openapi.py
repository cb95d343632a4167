"""Check one HTTP request against its operation in an official OpenAPI 3.0 JSON document.

Emulators use this so that a request the real vendor would refuse is refused locally too:
``OpenApiDocument(path).operation("GET", "/calendars/{calendarId}/free-slots")`` gives an
``OpenApiOperation`` whose ``check(...)`` returns the problems (empty when the request conforms):
declared path, query and header parameters (required, type, enum — query strings are coerced
to the declared ``number``/``integer``/``boolean``/``array`` first) and the JSON body against the
request-body schema. ``check_form(form)`` does the same for an
``application/x-www-form-urlencoded`` body (Twilio's): each field is coerced to the type its
property declares, then the whole is validated as the JSON object the schema describes. With
``strict`` (the default) undeclared query parameters and undeclared top-level body properties
(or form fields) are problems too, as they are for NestJS-style APIs that whitelist.
``statuses`` and ``response_validator(status)`` expose the declared answers (an emulator picks
its error status from them; tests check its answers against them); ``schema_validator(name)``
validates against one of the document's ``components/schemas``.

``$ref``s between files (``../common/common-schemas.json#/...``) resolve against the document's
own location through a ``referencing`` registry that reads sibling files on demand. OpenAPI 3.0's
``nullable: true`` is rewritten as a JSON Schema ``null`` alternative before validation.
Headers the security scheme covers (``Authorization``) are the emulator's business, not this one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlparse

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from slotline.providers.errors import ConfigError

_NUMBER_TYPES = ("number", "integer")
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def _load(path: Path) -> Any:
    try:
        return nullable_to_json_schema(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise ConfigError(str(path), "openapi", f"unreadable: {exc}") from None


def _retrieve(uri: str) -> Resource[Any]:
    """Sibling documents referenced by relative ``$ref`` (``file:`` URIs only)."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise ValueError(f"only local documents are resolved, not {uri}")
    return Resource.from_contents(_load(Path(unquote(parsed.path))), DRAFT202012)


def nullable_to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 ``nullable: true`` → a real ``null`` alternative (JSON Schema ignores it)."""
    if isinstance(node, list):
        return [nullable_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: nullable_to_json_schema(value) for key, value in node.items()}
    if out.get("nullable") is not True:
        return out
    del out["nullable"]
    kind = out.get("type")
    if kind is None:
        return {"anyOf": [out, {"type": "null"}]}
    out["type"] = [*kind, "null"] if isinstance(kind, list) else [kind, "null"]
    if "enum" in out and None not in out["enum"]:
        out["enum"] = [*out["enum"], None]
    return out


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


@dataclass(frozen=True, slots=True)
class _Parameter:
    name: str
    location: str  # path | query | header
    required: bool
    kind: str  # the schema's declared type ("" when none)
    validator: Draft202012Validator


class OpenApiOperation:
    """One ``method path`` of the document; see the module doc."""

    def __init__(
        self,
        method: str,
        template: str,
        parameters: Sequence[_Parameter],
        body: Draft202012Validator | None,
        body_required: bool,
        body_properties: frozenset[str] | None,
        responses: Mapping[str, Draft202012Validator | None],
        *,
        operation_id: str = "",
        form_types: Mapping[str, str] | None = None,
    ) -> None:
        self.method = method
        self.template = template
        self.operation_id = operation_id
        self._form_types = form_types  # form field → declared type; None: no form body
        self._responses = dict(responses)
        self._parameters = tuple(parameters)
        self._body = body
        self._body_required = body_required
        self._body_properties = body_properties

    @property
    def statuses(self) -> frozenset[int]:
        """The response statuses the operation declares (``default`` left out)."""
        return frozenset(int(code) for code in self._responses if code.isdigit())

    def response_validator(self, status: int) -> Draft202012Validator | None:
        """The JSON schema of the declared ``status`` answer (None: undeclared or no JSON)."""
        return self._responses.get(str(status))

    def check(
        self,
        *,
        path_params: Mapping[str, str] | None = None,
        query: Mapping[str, Sequence[str]] | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        has_body: bool = False,
        strict: bool = True,
    ) -> list[str]:
        """The request's problems, one readable line each (empty when it conforms)."""
        sources: dict[str, Mapping[str, Sequence[str]]] = {
            "path": {k: [v] for k, v in (path_params or {}).items()},
            "query": query or {},
            "header": {k.lower(): [v] for k, v in (headers or {}).items()},
        }
        problems: list[str] = []
        for param in self._parameters:
            key = param.name.lower() if param.location == "header" else param.name
            values = sources[param.location].get(key)
            if not values:
                if param.required:
                    problems.append(f"{param.location} parameter {param.name} is required")
                continue
            value, problem = _coerce(param, values)
            if problem:
                problems.append(problem)
                continue
            problems.extend(
                f"{param.location} parameter {param.name}: {error.message}"
                for error in param.validator.iter_errors(value)
            )
        if strict:
            declared = {p.name for p in self._parameters if p.location == "query"}
            problems.extend(
                f"query parameter {name} should not exist"
                for name in (query or {})
                if name not in declared
            )
        problems.extend(self._check_body(body, has_body, strict))
        return problems

    def check_form(
        self, form: Mapping[str, Sequence[str]], *, strict: bool = True
    ) -> tuple[dict[str, Any], list[str]]:
        """A form body as the JSON object its schema describes, and its problems (one line
        each, empty when it conforms). Values that do not parse as their declared type stay
        strings, and a repeated single-valued field stays a list, so the schema names them."""
        if self._form_types is None:
            raise ValueError(f"{self.method} {self.template} declares no form body")
        typed = {name: _from_form(self._form_types.get(name, ""), list(values))
                 for name, values in form.items()}  # fmt: skip
        return typed, self._check_body(typed, True, strict, label="form", member="form field")

    def _check_body(
        self, body: Any, has_body: bool, strict: bool, *, label: str = "body",
        member: str = "property",
    ) -> list[str]:  # fmt: skip
        if self._body is None:
            return []
        if not has_body:
            return ["request body is required"] if self._body_required else []
        problems = [
            f"{label}{''.join(f'.{p}' for p in error.absolute_path)}: {error.message}"
            for error in self._body.iter_errors(body)
        ]
        if strict and self._body_properties is not None and isinstance(body, dict):
            problems.extend(
                f"{member} {name} should not exist"
                for name in body
                if name not in self._body_properties
            )
        return problems


def _coerce(param: _Parameter, values: Sequence[str]) -> tuple[Any, str]:
    """A query/path/header string as the declared type, or a problem."""
    where = f"{param.location} parameter {param.name}"
    if param.kind == "array":
        return list(values), ""
    raw = values[-1]
    if param.kind in _NUMBER_TYPES:
        try:
            number = float(raw)
        except ValueError:
            return None, f"{where} must be a {param.kind}, not {raw!r}"
        if param.kind == "integer" and not number.is_integer():
            return None, f"{where} must be an integer, not {raw!r}"
        return (int(number) if number.is_integer() else number), ""
    if param.kind == "boolean":
        if raw not in ("true", "false"):
            return None, f"{where} must be true or false, not {raw!r}"
        return raw == "true", ""
    return raw, ""


def _from_form(kind: str, values: list[str]) -> Any:
    """Form strings as the declared type, or as they came (the validator then names them)."""
    if kind == "array":
        return values
    if len(values) != 1:
        return values  # a repeated single-valued field: not of the declared type
    value = values[0]
    if kind == "integer" and value.lstrip("-").isdigit():
        return int(value)
    if kind == "number":
        try:
            return float(value)
        except ValueError:
            return value
    if kind == "boolean" and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


class OpenApiDocument:
    """An OpenAPI 3.0 JSON document on disk, with its sibling documents resolvable."""

    def __init__(self, path: Path) -> None:
        self.path = path.resolve()
        self._uri = self.path.as_uri()
        self._document = _load(self.path)
        resource = Resource.from_contents(self._document, DRAFT202012)
        self._registry: Registry[Any] = Registry(retrieve=_retrieve).with_resource(  # type: ignore[call-arg]
            self._uri, resource
        )
        self._operations: dict[tuple[str, str], OpenApiOperation] = {}

    def operation(self, method: str, template: str) -> OpenApiOperation:
        """The operation for ``method`` on the path ``template`` exactly as the document spells
        it (``/calendars/{calendarId}/free-slots``); ``ConfigError`` if it has none."""
        key = (method.lower(), template)
        if key not in self._operations:
            self._operations[key] = self._build(*key)
        return self._operations[key]

    def _validator(self, uri: str) -> Draft202012Validator:
        return Draft202012Validator({"$ref": uri}, registry=self._registry)

    def _resolve(self, uri: str) -> Any:
        resolved = self._registry.resolver().lookup(uri)
        contents, resolver = resolved.contents, resolved.resolver
        while isinstance(contents, dict) and "$ref" in contents:
            resolved = resolver.lookup(contents["$ref"])
            contents, resolver = resolved.contents, resolved.resolver
        return contents

    def _build(self, method: str, template: str) -> OpenApiOperation:
        operation = self._document.get("paths", {}).get(template, {}).get(method)
        if not isinstance(operation, dict):
            raise ConfigError(str(self.path), f"{method.upper()} {template}", "no such operation")
        base = f"{self._uri}#/paths/{_escape(template)}/{method}"
        parameters: list[_Parameter] = []
        for index, raw in enumerate(operation.get("parameters", [])):
            # A parameter may itself be a $ref (to components/parameters or another file).
            where = f"{base}/parameters/{index}"
            if "$ref" in raw:
                where = urljoin(self._uri, raw["$ref"])
            spec = self._resolve(where)
            schema = self._resolve(f"{where}/schema") if "schema" in spec else {}
            parameters.append(
                _Parameter(
                    name=spec["name"],
                    location=spec["in"],
                    required=bool(spec.get("required", spec["in"] == "path")),
                    kind=str(schema.get("type", "")) if isinstance(schema, dict) else "",
                    validator=(
                        self._validator(f"{where}/schema")
                        if "schema" in spec
                        else Draft202012Validator({})
                    ),
                )
            )
        body: Draft202012Validator | None = None
        body_properties: frozenset[str] | None = None
        form_types: dict[str, str] | None = None
        request_body = operation.get("requestBody") or {}
        content = request_body.get("content") or {}
        kind = JSON if JSON in content else FORM if FORM in content else None
        if kind is not None:
            pointer = f"{base}/requestBody/content/{_escape(kind)}/schema"
            body = self._validator(pointer)
            schema = self._resolve(pointer)
            if isinstance(schema, dict) and isinstance(schema.get("properties"), dict):
                body_properties = frozenset(schema["properties"])
            if kind == FORM:
                form_types = {
                    name: _type_name(self._resolve(f"{pointer}/properties/{_escape(name)}"))
                    for name in body_properties or ()
                }
        responses: dict[str, Draft202012Validator | None] = {}
        for code, answer in (operation.get("responses") or {}).items():
            has_json = "application/json" in ((answer or {}).get("content") or {})
            pointer = f"{base}/responses/{code}/content/application~1json/schema"
            responses[str(code)] = self._validator(pointer) if has_json else None
        return OpenApiOperation(
            method.upper(),
            template,
            parameters,
            body,
            bool(request_body.get("required", False)),
            body_properties,
            responses,
            operation_id=str(operation.get("operationId", "")),
            form_types=form_types,
        )

    def schema_validator(self, name: str) -> Draft202012Validator:
        """A validator for ``#/components/schemas/<name>``. Its ``schema`` carries that schema
        itself (``$defs.t``, its references into the document kept resolvable) for a test to
        read the declared properties."""
        target = self._resolve(f"{self._uri}#/components/schemas/{_escape(name)}")
        root = {"$ref": "#/$defs/t", "$defs": {"t": target},
                "components": self._document.get("components", {})}  # fmt: skip
        return Draft202012Validator(root, registry=self._registry)


def _type_name(schema: Any) -> str:
    """The declared type ("" when none); of ``[kind, "null"]`` (a nullable property), ``kind``."""
    kind = schema.get("type", "") if isinstance(schema, dict) else ""
    if isinstance(kind, list):
        kind = next((item for item in kind if item != "null"), "")
    return kind if isinstance(kind, str) else ""


@lru_cache(maxsize=8)
def openapi_document(path: Path) -> OpenApiDocument:
    """One parsed document per path for the whole process (the files are large)."""
    return OpenApiDocument(path)
