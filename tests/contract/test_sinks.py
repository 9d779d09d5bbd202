"""Sink definitions (connectors/sinks/): they load, write a declared write-back topic into a
table no source captures, and hold their password only as a config-provider reference."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.connectors import (
    Endpoint,
    SinkDefinition,
    load_definitions,
    load_sinks,
    loop_free,
    render_sink_config,
)
from hub.errors import RegistryError
from hub.topics import registry

ENDPOINT = Endpoint("db.internal", 5432, Path("/etc/connect/secrets.properties"), "kafka:9092")


def test_every_sink_renders_a_loop_free_jdbc_config():
    sinks, definitions = load_sinks(), load_definitions()
    assert "hub-shop-availability" in sinks
    for sink in sinks.values():
        config = render_sink_config(sink, definitions, ENDPOINT, registry())
        assert config["topics"] == registry()[sink.topic].name
        assert registry()[sink.topic].kind == "control"
        assert config["connection.url"] == "jdbc:postgresql://db.internal:5432/shop"
        assert config["connection.password"].startswith("${file:/etc/connect/secrets.properties:")
        assert (config["insert.mode"], config["primary.key.mode"], config["delete.enabled"]) == (
            "upsert", "record_key", "true")  # fmt: skip
        assert config["value.converter.schemas.enable"] == "true"
        assert sink.table not in definitions[sink.system].tables


def test_a_sink_into_a_captured_table_or_with_an_inline_password_is_refused():
    definitions = load_definitions()
    echo = SinkDefinition(name="echo", topic="writeback.availability", system="shop",
                          table="shop.inventory_level", user="w", password_secret="k")  # fmt: skip
    with pytest.raises(RegistryError, match="would come back as changes"):
        loop_free(echo, definitions)
    with pytest.raises(ValueError, match="config-provider references"):
        SinkDefinition(name="x", topic="t", system="shop", table="shop.t", user="w",
                       password_secret="k", connector={"connection.password": "hunter2"})  # fmt: skip
