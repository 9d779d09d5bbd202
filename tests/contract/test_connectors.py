"""Connector definitions: required keys, secrets only by reference, every table has a raw topic."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hub.connectors import (
    CONNECTORS_DIR,
    ConnectorDefinition,
    Endpoint,
    load_definitions,
    render_config,
)
from hub.errors import RegistryError
from hub.topics import registry

DEFINITIONS = load_definitions()
ENDPOINT = Endpoint(
    "127.0.0.1", 15433, Path("/state/secrets/connect.properties"), "127.0.0.1:19092"
)


def test_the_built_in_systems_are_defined():
    # A deployment may define more systems; the three the local stack runs are always there.
    kinds = {d.system: d.connection.kind for d in DEFINITIONS.values()}
    assert {system: kinds.get(system) for system in ("pos", "shop", "erp")} == {
        "pos": "postgres",
        "shop": "postgres",
        "erp": "mariadb",
    }


@pytest.mark.parametrize("definition", DEFINITIONS.values(), ids=lambda d: d.system)
def test_rendered_config_has_the_common_settings(definition):
    config = render_config(definition, ENDPOINT, registry())
    for key in ("connector.class", "database.hostname", "database.port", "database.user",
                "database.password", "topic.prefix", "table.include.list"):  # fmt: skip
        assert config.get(key), key
    assert int(config["poll.interval.ms"]) <= 50, "a real-time hub polls Debezium's queue often"
    assert config["decimal.handling.mode"] == "string", "money and quantities stay exact"
    assert int(config["heartbeat.interval.ms"]) > 0
    assert config["topic.prefix"] == f"raw.{definition.system}"


@pytest.mark.parametrize(
    "definition", [d for d in DEFINITIONS.values() if d.connection.kind == "postgres"],
    ids=lambda d: d.system,
)  # fmt: skip
def test_postgres_config_uses_pgoutput_and_its_own_publication_and_slot(definition):
    config = render_config(definition, ENDPOINT, registry())
    assert config["plugin.name"] == "pgoutput"
    assert config["publication.autocreate.mode"] == "disabled"
    assert config["publication.name"] == config["slot.name"] == f"hub_{definition.system}"
    assert config["database.dbname"] == definition.connection.database


def test_mariadb_config_has_server_id_and_schema_history():
    config = render_config(DEFINITIONS["erp"], ENDPOINT, registry())
    assert config["connector.class"] == "io.debezium.connector.mariadb.MariaDbConnector"
    assert int(config["database.server.id"]) > 0
    assert config["database.include.list"] == "erp"
    assert config["schema.history.internal.kafka.bootstrap.servers"] == "127.0.0.1:19092"
    assert config["schema.history.internal.kafka.topic"] == "_hub_schema_history.erp"
    assert config["include.schema.changes"] == "false"


@pytest.mark.parametrize("definition", DEFINITIONS.values(), ids=lambda d: d.system)
def test_passwords_only_by_reference(definition):
    config = render_config(definition, ENDPOINT, registry())
    for key, value in config.items():
        if "password" in key:
            assert value.startswith("${file:") and value.endswith("}"), key


@pytest.mark.parametrize("path", sorted(CONNECTORS_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_definition_files_hold_no_password_values(path):
    def walk(node, trail=""):
        if isinstance(node, dict):
            for key, value in node.items():
                where = f"{trail}.{key}"
                if "password" in str(key).lower() and key != "password_secret":
                    assert str(value).startswith("${"), (
                        f"{path.name}{where} holds an inline password"
                    )
                walk(value, where)

    walk(yaml.safe_load(path.read_text()))


def test_inline_password_in_debezium_settings_is_rejected():
    raw = yaml.safe_load((CONNECTORS_DIR / "pos.yaml").read_text())
    raw["debezium"]["database.password"] = "hunter2"
    with pytest.raises(ValueError, match="config-provider references"):
        ConnectorDefinition(**raw)


@pytest.mark.parametrize("definition", DEFINITIONS.values(), ids=lambda d: d.system)
def test_every_captured_table_has_its_raw_topic(definition):
    for table in definition.tables:
        assert (
            registry().raw_for(definition.system, table).name
            == f"{definition.topic_prefix}.{table}"
        )


def test_undeclared_table_is_refused():
    raw = yaml.safe_load((CONNECTORS_DIR / "pos.yaml").read_text())
    raw["tables"] = [*raw["tables"], "pos.ticket_audit"]
    with pytest.raises(RegistryError):
        render_config(ConnectorDefinition(**raw), ENDPOINT, registry())


def test_rows_that_look_each_other_up_are_keyed_alike_at_the_source():
    pos = render_config(DEFINITIONS["pos"], ENDPOINT, registry())
    assert pos["message.key.columns"] == "pos.ticket_line:ticket_id"  # tickets: their own key
    assert "transforms" not in pos  # same column names: nothing to rename
    shop = render_config(DEFINITIONS["shop"], ENDPOINT, registry())
    assert shop["message.key.columns"] == "shop.order_line:order_id;shop.orders:id"
    (name,) = shop["transforms"].split(",")
    assert shop[f"transforms.{name}.type"].endswith("ReplaceField$Key")
    assert shop[f"transforms.{name}.renames"] == "id:order_id"
    assert shop[f"transforms.{name}.predicate"] == name == shop["predicates"]
    assert shop[f"predicates.{name}.pattern"] == r"raw\.shop\.shop\.orders"


def test_the_definitions_own_transforms_come_first():
    raw = yaml.safe_load((CONNECTORS_DIR / "shop.yaml").read_text())
    raw["debezium"] |= {"transforms": "mine", "predicates": "p"}
    config = render_config(ConnectorDefinition(**raw), ENDPOINT, registry())
    assert config["transforms"] == "mine,hubkey_shop_orders"
    assert config["predicates"] == "p,hubkey_shop_orders"


@pytest.mark.parametrize(
    ("section", "value", "says"),
    [("partitioning", {"pos.till": {"key": ["id"], "by": ["id"]}}, "uncaptured"),
     ("reference", ["pos.till"], "uncaptured"),
     ("reference", ["pos.ticket_line"], "read whole, not partitioned"),
     ("retention", {"pos.till": {"when": {"status": ["C"]}, "keep": "1h"}}, "uncaptured"),
     ("retention", {"pos.stock": {"when": {"qty": [0]}, "keep": "1h"}}, "does not keep"),
     ("retention", {"pos.ticket": {"when": {}, "keep": "1h"}}, "at least 1 item")],
)  # fmt: skip
def test_partitioning_reference_and_retention_name_captured_tables_once(section, value, says):
    raw = yaml.safe_load((CONNECTORS_DIR / "pos.yaml").read_text())
    raw[section] = value
    with pytest.raises(ValueError, match=says):
        ConnectorDefinition(**raw)


def test_the_kafka_key_of_a_row_is_what_debezium_writes_for_it():
    shop, pos = DEFINITIONS["shop"], DEFINITIONS["pos"]
    line = {"order_id": 42, "line_no": 2, "variant_id": 7, "quantity": "1"}
    assert shop.kafka_key("shop.order_line", {"order_id": 42, "line_no": 2}, line) == (
        b'{"order_id":42}'
    )
    # An order keyed under its lines' name; a deleted one by its primary key alone.
    assert shop.kafka_key("shop.orders", {"id": 42}, None) == b'{"order_id":42}'
    # A table keyed by its primary key: the key as given, in primary-key order.
    assert pos.kafka_key("pos.stock", {"store_code": "PAR01", "ean": "3760000000001"}, {}) == (
        b'{"store_code":"PAR01","ean":"3760000000001"}'
    )
    recorded_key = b'{"ticket_id":900001}'  # tests/fixtures: what Debezium wrote for a ticket
    assert pos.kafka_key("pos.ticket", {"ticket_id": 900001}, None) == recorded_key
