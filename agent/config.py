"""Loading settings: embedded defaults < a user YAML file < ``SLOTLINE_<SECTION>__<KEY>`` variables.

Each source is deep-merged into one plain tree, remembering which source set which key; the tree
is then validated once against ``Settings`` (``agent.config_models``). Every problem found on the
way (bad YAML, unknown keys, wrong types, secrets in a file, ...) is reported together in one
``InvalidConfig`` naming the source, the dotted key and what is wrong:

    /etc/slotline.yaml: calendars.main.timezone: 'America/Nowhere' is not an IANA time zone
    environment SLOTLINE_SERVER__PORT: server.port: must be a valid integer, ..., got 'http'

Secrets are never settings: ``load_secrets`` reads the fixed variables in ``SECRET_ENV_NAMES``.
Nothing here reads ``os.environ``; the caller passes the environment in.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from slotline.agent.config_models import (
    SECRET_ENV_NAMES,
    BookingActionSettings,
    CalendarSettings,
    FieldProblems,
    FrozenMap,
    LlmSettings,
    LogSettings,
    Secrets,
    ServerSettings,
    Settings,
    StoreSettings,
    SttSettings,
    TtsSettings,
    TurnSettings,
    TwilioSettings,
)
from slotline.providers.errors import ConfigError

ENV_PREFIX = "SLOTLINE_"
DEFAULTS_SOURCE = "defaults"

Key = tuple[str, ...]
Tree = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Problem:
    source: str  # a file path, "environment SLOTLINE_X__Y" or "defaults"
    key: str  # dotted, e.g. calendars.main.timezone
    problem: str

    def __str__(self) -> str:
        return f"{self.source}: {self.key}: {self.problem}"


class InvalidConfig(ConfigError):
    """One or more configuration problems; ``source``/``key``/``problem`` are the first one's."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        first = problems[0]
        super().__init__(first.source, first.key, first.problem)
        self.problems = tuple(problems)
        if len(problems) > 1:
            listing = "\n".join(f"  {p}" for p in problems)
            self.args = (f"{len(problems)} problems:\n{listing}",)


def load_settings(path: Path | None, env: Mapping[str, str]) -> Settings:
    """Defaults, overridden by the YAML file at ``path`` (if given), overridden by ``env``."""
    tree = Settings().model_dump()
    origin: dict[Key, str] = {}
    problems: list[Problem] = []
    if path is not None:
        data = _read_yaml(path, problems)
        if data is not None:
            _merge(tree, data, (), str(path), origin, problems)
    _apply_env(tree, env, origin, problems)
    problems += _take_out_secrets(tree, (), origin)
    try:
        settings = Settings.model_validate(tree)
    except ValidationError as exc:
        problems += _explain(exc, origin)
    if problems:
        raise InvalidConfig(problems)
    return settings


def load_secrets(env: Mapping[str, str]) -> Secrets:
    """The credentials set in ``env``; surrounding whitespace (a file's newline) is dropped."""
    values = {name.lower(): env.get(name, "").strip() for name in SECRET_ENV_NAMES}
    return Secrets.model_validate({key: value for key, value in values.items() if value})


def redacted_dump(settings: Settings) -> dict[str, Any]:
    """The settings as plain JSON-able data, safe to log (passwords inside URLs are masked)."""
    dumped = settings.model_dump(mode="json")
    return {section: _mask_url_passwords(value) for section, value in dumped.items()}


# ---- reading sources -------------------------------------------------------------------------


class _YamlLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[tuple[type, Hashable]] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # SafeLoader reports unhashable keys itself
            marker = (type(key), key)  # 1 and true are different keys, though 1 == True
            if marker in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(marker)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path, problems: list[Problem]) -> Mapping[Any, Any] | None:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.append(Problem(source, "(file)", "file not found"))
        return None
    except UnicodeDecodeError:
        problems.append(Problem(source, "(file)", "not UTF-8 text"))
        return None
    except OSError as exc:
        problems.append(Problem(source, "(file)", exc.strerror or str(exc)))
        return None
    try:
        data = yaml.load(text, Loader=_YamlLoader)  # a SafeLoader: no object tags
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        key = f"line {mark.line + 1}" if mark is not None else "(file)"
        problems.append(Problem(source, key, f"invalid YAML: {exc.problem or exc.context}"))
        return None
    except yaml.YAMLError as exc:
        problems.append(Problem(source, "(file)", f"invalid YAML: {exc}"))
        return None
    if data is None:  # empty, or only comments
        return {}
    if not isinstance(data, Mapping):
        found = type(data).__name__
        problem = f"expected a mapping of sections, got {found}"
        problems.append(Problem(source, "(top level)", problem))
        return None
    return data


def _merge(
    tree: Tree,
    data: Mapping[Any, Any],
    path: Key,
    source: str,
    origin: dict[Key, str],
    problems: list[Problem],
) -> None:
    """Deep-merges ``data`` into ``tree``; a mapping adds to a mapping, anything else replaces."""
    for raw_key, value in data.items():
        if not isinstance(raw_key, str):
            key_text = _dotted((*path, repr(raw_key)))
            problems.append(Problem(source, key_text, "keys must be text (quote it)"))
            continue
        here = (*path, raw_key)
        origin[here] = source
        if isinstance(value, Mapping):
            if not isinstance(tree.get(raw_key), dict):
                tree[raw_key] = {}
            _merge(tree[raw_key], value, here, source, origin, problems)
        elif value is None and isinstance(tree.get(raw_key), dict):
            continue  # a section holding only comments changes nothing
        else:
            tree[raw_key] = value


def _apply_env(
    tree: Tree, env: Mapping[str, str], origin: dict[Key, str], problems: list[Problem]
) -> None:
    """``SLOTLINE_CALENDARS__MAIN__PROVIDER=calcom`` sets ``calendars.main.provider``."""
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name in SECRET_ENV_NAMES:
            continue
        source = f"environment {name}"
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        if not all(parts):
            problems.append(Problem(source, name, "empty key: nest keys with exactly '__'"))
            continue
        node = tree
        path: Key = ()
        for part in parts[:-1]:
            # Reuse an existing key written in another case (a calendar named "Alice").
            key = next((k for k in node if k.lower() == part), part)
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node, path = node[key], (*path, key)
        leaf = next((k for k in node if k.lower() == parts[-1]), parts[-1])
        node[leaf] = env[name]
        here = (*path, leaf)
        for stale in [k for k in origin if k[: len(here)] == here]:
            del origin[stale]
        origin[here] = source


# ---- secrets in the wrong place --------------------------------------------------------------

# Key names that hold credentials. Exact names only ("token_url" is a setting).
_SECRET_KEYS = frozenset(
    {"api_key", "apikey", "api_token", "token", "auth_token", "account_sid", "password",
     "secret", "client_secret", "webhook_secret", "refresh_token", "credentials", "private_key"}
    | {name.lower() for name in SECRET_ENV_NAMES}
)
_SECTION_SECRET = {
    "stt": "DEEPGRAM_API_KEY",
    "llm": "OPENAI_API_KEY",
    "tts": "ELEVENLABS_API_KEY",
    "server": "SLOTLINE_API_TOKEN",
}
_CALENDAR_SECRET = {
    "calcom": "CALCOM_API_KEY",
    "ghl": "GHL_API_TOKEN",
    "google": "GOOGLE_APPLICATION_CREDENTIALS or GOOGLE_OAUTH_REFRESH_TOKEN",
    "outlook": "MS_CLIENT_SECRET",
    "caldav": "CALDAV_PASSWORD",
    "webhook": "SLOTLINE_WEBHOOK_SECRET",
}


def _take_out_secrets(tree: Tree, path: Key, origin: Mapping[Key, str]) -> list[Problem]:
    """Reports (and removes, so they are not also 'unknown keys') secrets given as settings."""
    problems: list[Problem] = []
    for key in list(tree):
        here = (*path, key)
        if key.lower() in _SECRET_KEYS:
            del tree[key]
            variable = _secret_variable(here, tree)
            problem = f"secrets come from the environment: set {variable} instead"
            problems.append(Problem(origin.get(here, DEFAULTS_SOURCE), _dotted(here), problem))
        elif isinstance(tree[key], dict):
            problems += _take_out_secrets(tree[key], here, origin)
    return problems


def _secret_variable(key: Key, siblings: Tree) -> str:
    if key[-1].upper() in SECRET_ENV_NAMES:
        return key[-1].upper()
    if key[0] == "twilio":
        return "TWILIO_ACCOUNT_SID" if "sid" in key[-1] else "TWILIO_AUTH_TOKEN"
    if key[0] == "calendars":
        return _CALENDAR_SECRET.get(str(siblings.get("provider")), "the provider's variable")
    return _SECTION_SECRET.get(key[0], "the provider's variable")


# ---- explaining validation errors ------------------------------------------------------------


def _explain(exc: ValidationError, origin: Mapping[Key, str]) -> list[Problem]:
    problems: list[Problem] = []
    for error in exc.errors(include_url=False):
        loc = tuple(str(part) for part in error["loc"])
        for key, problem in _describe(error, loc):
            source = _source_of(key, origin)
            if error["type"] == "extra_forbidden":
                problem += _nesting_hint(key, source)
            problems.append(Problem(source, _dotted(key, error["loc"]), problem))
    return problems


def _describe(error: ErrorDetails, loc: Key) -> list[tuple[Key, str]]:
    kind = error["type"]
    if kind == "value_error":
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, FieldProblems):
            return [((*loc, *sub), problem) for sub, problem in cause.problems]
        return [(loc, str(cause))]
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(loc[-1], _known_keys(loc[:-1]), n=1)
        return [(loc, f"unknown key (did you mean {close[0]!r}?)" if close else "unknown key")]
    if kind == "missing":
        return [(loc, "required")]
    problem = f"{_SHOULD.sub('must ', error['msg'])}, got {error['input']!r}"
    if kind == "string_type" and isinstance(error["input"], int | float):
        problem += " (quote it in YAML)"
    return [(loc, problem)]


_SHOULD = re.compile(r"^(Input|String|Value|List|Tuple) should ")


def _known_keys(parent: Key) -> list[str]:
    """The keys the settings model accepts under ``parent`` (for 'did you mean')."""
    model: type[BaseModel] = Settings
    rest = list(parent)
    while rest:
        field = model.model_fields.get(rest.pop(0))
        if field is None:
            return []
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
            continue
        args = get_args(annotation)  # FrozenMap[CalendarSettings] -> (CalendarSettings,)
        if rest and args and isinstance(args[-1], type) and issubclass(args[-1], BaseModel):
            rest.pop(0)
            model = args[-1]
            continue
        return []
    return list(model.model_fields)


def _nesting_hint(key: Key, source: str) -> str:
    """SLOTLINE_STT_PROVIDER is a likely typo for SLOTLINE_STT__PROVIDER."""
    if not source.startswith("environment "):
        return ""
    for known in _known_keys(key[:-1]):
        if key[-1].startswith(f"{known}_"):
            fixed = (*key[:-1], known, key[-1][len(known) + 1 :])
            return f" (nest keys with '__': {ENV_PREFIX}{'__'.join(fixed).upper()})"
    return ""


def _source_of(key: Key, origin: Mapping[Key, str]) -> str:
    """Which sources set ``key``, or (for a missing key) its nearest parent that was set."""
    for depth in range(len(key), 0, -1):
        prefix = key[:depth]
        sources = sorted({src for path, src in origin.items() if path[:depth] == prefix})
        if sources:
            return " and ".join(sources)
    return DEFAULTS_SOURCE


def _dotted(key: Key, raw: Sequence[str | int] = ()) -> str:
    """``calendars.main.timezone``; list positions as ``calendars[1]``."""
    text = ""
    for position, part in enumerate(key):
        is_index = position < len(raw) and isinstance(raw[position], int)
        text += f"[{part}]" if is_index else f".{part}" if text else part
    return text


_URL_PASSWORD = re.compile(r"(://[^/:@\s]*:)[^/@\s]+@")


def _mask_url_passwords(value: object) -> object:
    if isinstance(value, str):
        return _URL_PASSWORD.sub(r"\1***@", value)
    if isinstance(value, dict):
        return {key: _mask_url_passwords(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask_url_passwords(item) for item in value]
    return value


__all__ = [
    "BookingActionSettings",
    "CalendarSettings",
    "ConfigError",
    "FrozenMap",
    "InvalidConfig",
    "LlmSettings",
    "LogSettings",
    "Problem",
    "SECRET_ENV_NAMES",
    "Secrets",
    "ServerSettings",
    "Settings",
    "StoreSettings",
    "SttSettings",
    "TtsSettings",
    "TurnSettings",
    "TwilioSettings",
    "load_secrets",
    "load_settings",
    "redacted_dump",
]
