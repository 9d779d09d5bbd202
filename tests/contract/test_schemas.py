"""The schemas/ folder: files match the models, examples validate, registry conventions hold."""

from __future__ import annotations

import json

import jsonschema
import pytest

from hub.models import UNIFIED_MODELS
from hub.schema_files import expected_files
from hub.topics import SCHEMAS_DIR, registry

TOPICS = list(registry().topics.values())


@pytest.mark.parametrize(
    ("path", "text"), list(expected_files().items()), ids=lambda v: getattr(v, "name", "")
)
def test_schema_file_matches_model(path, text):
    assert path.exists(), f"{path} missing: run 'hub schemas write'"
    assert path.read_text() == text, f"{path} differs from its model: run 'hub schemas write'"


@pytest.mark.parametrize("spec", [t for t in TOPICS if t.example], ids=lambda t: t.id)
def test_examples_validate_against_schema_and_model(spec):
    example = json.loads((SCHEMAS_DIR / spec.example).read_text())
    schema = json.loads((SCHEMAS_DIR / spec.schema_file).read_text())
    jsonschema.Draft202012Validator(schema).validate(example["value"])
    record = UNIFIED_MODELS[spec.model].model_validate(example["value"])
    assert record.key == example["key"]


def test_schema_rejects_what_the_model_rejects():
    schema = json.loads((SCHEMAS_DIR / "inventory_level/v2.json").read_text())
    example = json.loads((SCHEMAS_DIR / "examples/inventory_level.v2.json").read_text())["value"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**example, "gtin": "12345"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**example, "unexpected": 1}, schema)


@pytest.mark.parametrize("spec", [t for t in TOPICS if t.kind == "unified"], ids=lambda t: t.id)
def test_unified_topics_declare_model_schema_example_and_dlq(spec):
    assert spec.model in UNIFIED_MODELS
    assert spec.schema_file and spec.example
    assert spec.dlq and registry()[spec.dlq].kind == "dlq"


@pytest.mark.parametrize("spec", [t for t in TOPICS if t.kind == "raw"], ids=lambda t: t.id)
def test_raw_topics_name_their_source_and_dlq(spec):
    assert spec.source is not None
    assert spec.dlq and registry()[spec.dlq].kind == "dlq"


def test_inventory_topic_is_compacted():
    assert registry()["unified.inventory"].cleanup_policy == "compact"


@pytest.mark.parametrize("spec", [t for t in TOPICS if t.kind == "dlq"], ids=lambda t: t.id)
def test_dlq_topics_keep_records_long_enough_and_take_large_ones(spec):
    assert spec.cleanup_policy == "delete"
    assert spec.retention_ms is not None and spec.retention_ms >= 14 * 24 * 3600 * 1000
    assert spec.max_message_bytes is not None and spec.max_message_bytes >= 8 * 1024 * 1024


def test_topic_names_are_unique():
    names = [t.name for t in TOPICS]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(
    "older", sorted(SCHEMAS_DIR.glob("examples/*.v*.json")), ids=lambda p: p.name
)
def test_a_schema_reads_the_records_of_every_earlier_version(older):
    # Versions of a model only ever add optional fields: each record of an earlier version is
    # valid under the schema the registry names now (consumers upgrade their schema first).
    family = older.name.split(".")[0]
    (spec,) = [t for t in TOPICS if t.example and t.example.startswith(f"examples/{family}.")]
    schema = json.loads((SCHEMAS_DIR / spec.schema_file).read_text())
    jsonschema.Draft202012Validator(schema).validate(json.loads(older.read_text())["value"])


def test_earlier_schema_files_stay_as_they_were_published():
    # inventory_level/v1.json is what consumers of version 1 validate with: kept, never rewritten.
    v1 = json.loads((SCHEMAS_DIR / "inventory_level/v1.json").read_text())
    assert "unsellable" not in v1["properties"]
    assert v1["properties"]["schema_version"]["const"] == 1
