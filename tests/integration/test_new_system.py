"""A fourth source system, added by following the README's "Adding a system" and nothing else: its
SQL, definition and topic declaration are taken from the README as they are, and only documented
commands run. Then a forged record far ahead of the source is dead-lettered, not published.

Marked ``faults``: it replaces the session's worker with one that knows the new system."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sys
import textwrap
import time
import uuid

import orjson
import psycopg
import pytest
import yaml
from confluent_kafka import Producer

from hub.kafka_io import header, read_to_end
from hub.settings import REPO_ROOT
from hub.topics import registry
from tests.integration.harness import Worker, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.faults]

ROWS = [  # site, GTIN-14, available, damaged
    ("LOG1", "03760000000024", 142, 6),
    ("LOG1", "00012345600012", 10, 0),  # a UPC-A: its EAN-13 key starts with 0
    ("LOG2", "03760000000031", 75, 2),
]
KEYS = {
    "3760000000024@warehouse:LOG1",
    "0012345600012@warehouse:LOG1",
    "3760000000031@warehouse:LOG2",
}


def readme_block(name: str) -> str:
    """The code block that follows ``<!-- adding-a-system: NAME -->`` in the README."""
    text = (REPO_ROOT / "README.md").read_text()
    match = re.search(
        rf"<!-- adding-a-system: {re.escape(name)} -->\s*```\w*\n(.*?)```", text, re.S
    )
    assert match, f"the README has no block {name!r} under 'Adding a system'"
    return textwrap.dedent(match.group(1))


def superuser(stack, database: str) -> str:
    """A DSN for the shop's PostgreSQL server as its superuser (the stack's pgpass has it)."""
    dsn = str(stack.endpoints["sources"]["shop"])
    return dsn.replace("shop_app@", "postgres@").replace("/shop?", f"/{database}?")


@pytest.fixture
def wms(stack, tmp_path):
    """The new system's database, made as its application and its DBA would, and a deployment
    config dir holding the definitions and registry plus the README's blocks."""
    with psycopg.connect(superuser(stack, "postgres"), autocommit=True) as admin:
        admin.execute("CREATE DATABASE wms")
    password = uuid.uuid4().hex
    with psycopg.connect(superuser(stack, "wms"), autocommit=True) as db:
        db.execute("CREATE SCHEMA wms")
        db.execute(
            "CREATE TABLE wms.stock (site varchar(10), gtin14 char(14), available numeric(12) NOT"
            " NULL, damaged numeric(12) NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(),"
            " PRIMARY KEY (site, gtin14))"
        )
        for row in ROWS:
            db.execute("INSERT INTO wms.stock VALUES (%s, %s, %s, %s)", row)
        db.execute(readme_block("dba.sql").replace("change-me", password))
    config = tmp_path / "deployment"
    shutil.copytree(REPO_ROOT / "connectors", config / "connectors")
    (config / "connectors" / "wms.yaml").write_text(readme_block("connectors/wms.yaml"))
    network = yaml.safe_load((config / "connectors" / "network.yaml").read_text())
    network["locations"].update(yaml.safe_load(readme_block("network.yaml"))["locations"])
    network["version"] += 1
    (config / "connectors" / "network.yaml").write_text(yaml.safe_dump(network, sort_keys=False))
    registry_doc = yaml.safe_load((REPO_ROOT / "schemas" / "topics.yaml").read_text())
    registry_doc["topics"].update(yaml.safe_load(readme_block("topics.yaml"))["topics"])
    (config / "topics.yaml").write_text(yaml.safe_dump(registry_doc, sort_keys=False))
    shop_port = stack.endpoints["sources"]["shop"].split("@127.0.0.1:")[1].split("/")[0]
    env = {**stack.env, "HUB_CONNECTORS_DIR": str(config / "connectors"),
           "HUB_TOPICS_FILE": str(config / "topics.yaml"),
           "HUB_SOURCE_HOSTS": json.dumps({"wms": f"127.0.0.1:{shop_port}"})}  # fmt: skip
    yield env, password
    # Leave the session's stack as it was: no connector, slot or database of the new system.
    from hub.connect_client import ConnectClient, ConnectError

    with contextlib.suppress(ConnectError):
        ConnectClient(stack.endpoints["connect_url"]).delete("hub-wms")
    with psycopg.connect(superuser(stack, "postgres"), autocommit=True) as admin:
        wait_until(lambda: not admin.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name ="
                                             " 'hub_wms' AND active").fetchone(),
                   "the hub-wms slot released", 60)  # fmt: skip
        admin.execute("SELECT pg_drop_replication_slot('hub_wms') FROM pg_replication_slots"
                      " WHERE slot_name = 'hub_wms'")  # fmt: skip
        admin.execute("DROP DATABASE wms WITH (FORCE)")


def hub(stack, env, *args: str, stdin: str | None = None):
    import subprocess

    return subprocess.run([sys.executable, "-m", "hub", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=600, check=False)  # fmt: skip


def latest(stack, keys: set[str]) -> dict[str, dict | None]:
    found: dict[str, dict | None] = {}
    for msg in read_to_end(stack.endpoints["kafka_bootstrap"], [registry()["unified.inventory"]]):
        key = (msg.key() or b"").decode()
        if key in keys:
            found[key] = orjson.loads(msg.value()) if msg.value() is not None else None
    return found


def test_a_fourth_system_by_the_readme_alone(stack, wms, quiet_group):
    env, password = wms
    started = time.monotonic()
    applied = hub(stack, env, "topics", "apply")
    assert applied.returncode == 0, applied.stderr
    assert "raw.wms.wms.stock: created" in applied.stderr
    secret = hub(stack, env, "secrets", "set", "wms.password", stdin=password + "\n")
    assert secret.returncode == 0, secret.stderr
    dry = hub(stack, env, "connectors", "apply", "--dry-run", "wms")
    assert dry.returncode == 0 and "hub-wms: valid" in dry.stderr, dry.stderr
    create = hub(stack, env, "connectors", "apply", "wms")
    assert create.returncode == 0 and "RUNNING" in create.stderr, create.stderr
    worker = Worker(stack, "wms-worker")
    worker.env.update(
        {k: env[k] for k in ("HUB_CONNECTORS_DIR", "HUB_TOPICS_FILE", "HUB_SOURCE_HOSTS")}
    )
    quiet_group.append(worker)
    worker.start()

    def arrived() -> bool:
        records = latest(stack, KEYS)
        return set(records) == KEYS and all(records.values())

    wait_until(arrived, "the new system's stock on unified.inventory", 180,
               lambda: f"{latest(stack, KEYS)}\n{worker.log.read_text(errors='replace')[-3000:]}")  # fmt: skip
    took = time.monotonic() - started
    sys.stderr.write(f"[new system] README steps 4-8 and the first records: {took:.0f} s\n")
    records = latest(stack, KEYS)
    first = records["3760000000024@warehouse:LOG1"]
    assert first is not None
    assert (first["on_hand"], first["unsellable"], first["source_system"]) == ("148", "6", "wms")
    assert first["schema_version"] == 2 and first["source_article_id"] == "03760000000024"

    # hub stack up keeps the secret it did not write; reconcile checks the new system too.
    up = hub(stack, env, "stack", "up")
    assert up.returncode == 0, up.stderr
    listed = hub(stack, env, "secrets", "list")
    assert re.search(r"^wms\s+wms\.password\s+set$", listed.stdout, re.M), listed.stdout
    report = json.loads(hub(stack, env, "reconcile", "--json", "--wait", "60").stdout)
    assert report["agree"] and not report["unchecked_systems"], json.dumps(report)[:3000]

    # A change flows; a copy of it far ahead of the source's log is dead-lettered, not published.
    with psycopg.connect(superuser(stack, "wms")) as db:
        db.execute(
            "UPDATE wms.stock SET damaged = 8 WHERE site = 'LOG1' AND gtin14 = '03760000000024'"
        )
    wait_until(lambda: (latest(stack, KEYS)["3760000000024@warehouse:LOG1"] or {}).get("unsellable") == "8",
               "the damaged count changed")  # fmt: skip
    raw = registry()["raw.pos.stock"].model_copy(update={"name": "raw.wms.wms.stock"})
    real = [m for m in read_to_end(stack.endpoints["kafka_bootstrap"], [raw]) if m.value()][-1]
    forged = orjson.loads(real.value())
    forged["after"]["damaged"] = "0"
    forged["source"]["lsn"] += 1 << 45
    forged["source"]["sequence"] = json.dumps([str(forged["source"]["lsn"])] * 2)
    # Into the partition Debezium writes that key to (Kafka's Java partitioner: murmur2).
    producer = Producer({"bootstrap.servers": stack.endpoints["kafka_bootstrap"],
                         "partitioner": "murmur2_random"})  # fmt: skip
    producer.produce("raw.wms.wms.stock", orjson.dumps(forged), real.key())
    assert producer.flush(10) == 0

    def dead_lettered() -> list[str]:
        letters = read_to_end(stack.endpoints["kafka_bootstrap"], [registry()["hub.dlq"]])
        return [header(m, "hub.dlq.reason") or "" for m in letters
                if header(m, "hub.dlq.topic") == "raw.wms.wms.stock"]  # fmt: skip

    wait_until(lambda: "implausible_position" in dead_lettered(), "the forged record dead-lettered")
    assert (latest(stack, KEYS)["3760000000024@warehouse:LOG1"] or {}).get("unsellable") == "8"
    report = json.loads(hub(stack, env, "reconcile", "--json", "--wait", "30").stdout)
    assert report["agree"], json.dumps(report)[:3000]
