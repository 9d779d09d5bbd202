"""`hub stack up` is idempotent; `hub stack env` tells the endpoints; `hub stack down` leaves nothing."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

import psycopg
import pytest
import requests

pytestmark = pytest.mark.integration


def test_env_json_names_every_endpoint(stack):
    env = stack.endpoints
    assert env["kafka_bootstrap"] == f"127.0.0.1:{stack.env['HUB_KAFKA_PORT']}"
    assert env["connect_url"] == f"http://127.0.0.1:{stack.env['HUB_CONNECT_PORT']}"
    assert set(env["sources"]) == {"pos", "shop", "erp"}
    with psycopg.connect(env["sources"]["pos"]) as conn:
        assert conn.execute("SELECT count(*) FROM pos.store").fetchone()[0] >= 5
        assert conn.execute("SELECT count(DISTINCT ean) FROM pos.stock").fetchone()[0] >= 200
        assert conn.execute("SELECT count(*) FROM pos.loyalty_member").fetchone()[0] >= 500
        assert conn.execute("SELECT min(n) FROM (SELECT count(*) n FROM pos.stock GROUP BY store_code) s"
                            ).fetchone()[0] >= 200  # fmt: skip


def test_second_up_leaves_exactly_one_running_connector(stack):
    again = stack.hub("stack", "up")
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stderr
    connect = stack.endpoints["connect_url"]
    names = sorted(requests.get(f"{connect}/connectors", timeout=10).json())
    assert names == ["hub-erp", "hub-pos", "hub-shop", "hub-shop-availability"]
    for name in names:
        status = requests.get(f"{connect}/connectors/{name}/status", timeout=10).json()
        assert status["connector"]["state"] == "RUNNING", name
        assert [t["state"] for t in status["tasks"]] == ["RUNNING"], name


def test_connect_never_shows_a_password(stack):
    connect = stack.endpoints["connect_url"]
    secrets = json.loads((stack.state_dir / "secrets" / "passwords.json").read_text()).values()
    assert len(secrets) >= 7
    for name in ("hub-pos", "hub-shop", "hub-erp", "hub-shop-availability"):
        answer = requests.get(f"{connect}/connectors/{name}", timeout=10).text
        assert (
            '"database.password":"${file:' in answer or '"connection.password":"${file:' in answer
        ), name
        assert not [s for s in secrets if s in answer], name
    logs = [log.read_text(errors="replace") for log in (stack.state_dir / "logs").glob("*.log")]
    assert len(logs) >= 5
    assert not [s for s in secrets for text in logs if s in text]


def test_services_bind_to_loopback_only(stack):
    listening = Path("/proc/net/tcp").read_text().splitlines()[1:]
    names = ("HUB_KAFKA_PORT", "HUB_KAFKA_CONTROLLER_PORT", "HUB_CONNECT_PORT",
             "HUB_POS_PG_PORT", "HUB_SHOP_PG_PORT", "HUB_ERP_MARIADB_PORT")  # fmt: skip
    ports = {int(stack.env[name]) for name in names}
    found = {}
    for line in listening + Path("/proc/net/tcp6").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, port = local.rsplit(":", 1)
        if state == "0A" and int(port, 16) in ports:  # LISTEN
            found[int(port, 16)] = address
    assert set(found) == ports
    for address in found.values():
        assert address in ("0100007F", "0000000000000000FFFF00000100007F"), address


@pytest.mark.stops_stack
def test_down_leaves_no_process(stack):
    pids = [int(p.read_text()) for p in (stack.state_dir / "run").glob("*.pid")]
    assert len(pids) == 5  # postgres-pos, postgres-shop, mariadb-erp, kafka, connect
    down = stack.hub("stack", "down")
    assert down.returncode == 0, down.stderr
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        ), pid
    marker = str(stack.state_dir).encode()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                assert marker not in (proc / "cmdline").read_bytes(), proc.name
    status = json.loads(stack.hub("stack", "status", "--json").stdout)
    assert {c["state"] for c in status["components"].values()} == {"stopped"}


@pytest.mark.after_others
def test_reconcile_finds_sources_and_unified_topics_in_agreement(stack, worker):
    """After every change, poison record, replay and second worker of the tests before this one."""
    result = stack.hub("reconcile", "--json", "--wait", "120")
    report = json.loads(result.stdout)
    assert report["agree"], result.stdout[:3000]
    assert result.returncode == 0
    counts = {topic: (r["source_keys"], r["topic_keys"]) for topic, r in report["topics"].items()}
    assert counts["unified.inventory"][0] >= 1800  # 1,200 store + 400 warehouse + 200 web levels
    assert all(source == on_topic for source, on_topic in counts.values()), counts


@pytest.mark.after_others
def test_reconcile_reports_a_difference_with_exit_code_1(stack, worker):
    # Changes pile up unprocessed (the whole group: `hub worker` runs the Faust process as a child).
    os.killpg(worker.pid, signal.SIGSTOP)
    try:
        stack.sql(
            "erp",
            "UPDATE STK_BAL SET QTY_OH = QTY_OH + 1 WHERE WHS_CODE = 'W001' AND ART_NO = 'A000000009'",
        )
        result = stack.hub("reconcile", "--json", "--wait", "0")
    finally:
        os.killpg(worker.pid, signal.SIGCONT)
    report = json.loads(result.stdout)
    assert result.returncode == 1 and not report["agree"]
    (key,) = report["topics"]["unified.inventory"]["wrong"]
    assert key.endswith("@warehouse:W001")
    assert stack.hub("reconcile", "--wait", "120").returncode == 0  # caught up again
