"""The JSON Schema of flow files, shipped as ``agent/flow/flow.schema.json``.

Generated from the models in :mod:`agent.flow.model`; regenerate after changing them with
``python -m slotline.agent.flow.schema`` (a test fails while the shipped file is out of
date). Editors pick it up from a first line such as
``# yaml-language-server: $schema=../../agent/flow/flow.schema.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from slotline.agent.flow.model import flow_json_schema

SCHEMA_PATH = Path(__file__).with_name("flow.schema.json")


def schema_text() -> str:
    return json.dumps(flow_json_schema(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    SCHEMA_PATH.write_text(schema_text(), encoding="utf-8")
    print(f"wrote {SCHEMA_PATH}")


if __name__ == "__main__":
    main()
