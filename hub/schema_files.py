"""JSON Schema files under ``schemas/``, generated from the canonical models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hub.models import UNIFIED_MODELS
from hub.topics import SCHEMAS_DIR, registry


def schema_of(model_name: str) -> dict[str, Any]:
    schema = UNIFIED_MODELS[model_name].model_json_schema(mode="serialization")
    # A model embedded in another (an alert's availability record) is a definition of that
    # schema: its own $id would move the base its references resolve against.
    for definition in schema.get("$defs", {}).values():
        definition.pop("$id", None)
    return schema


def render(model_name: str) -> str:
    document = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema_of(model_name)}
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def expected_files() -> dict[Path, str]:
    """Every schema file the registry names, with the text the models generate for it."""
    files: dict[Path, str] = {}
    for spec in registry().topics.values():
        if spec.model and spec.schema_file:
            files[SCHEMAS_DIR / spec.schema_file] = render(spec.model)
    return files


def write_all() -> list[Path]:
    written = []
    for path, text in expected_files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
