"""`hub stack up` is idempotent; `hub stack env` tells the endpoints; `hub stack down` leaves nothing."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import psycopg
import pytest
import requests

pytestmark = pytest.mark.integration


def test_env_json_names_every_endpoint(stack):
    env = stack.endpoints
    assert env["kafka_bootstrap"] == f"127.0.0.1:{stack.env['HUB_KAFKA_PORT']}"
    assert env["connect_url"] == f"http://127.0.0.1:{stack.env['HUB_CONNECT_PORT']}"
    assert set(env["sources"]) == {"pos"}
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
    assert requests.get(f"{connect}/connectors", timeout=10).json() == ["hub-pos"]
    status = requests.get(f"{connect}/connectors/hub-pos/status", timeout=10).json()
    assert status["connector"]["state"] == "RUNNING"
    assert [t["state"] for t in status["tasks"]] == ["RUNNING"]


def test_connect_never_shows_the_password(stack):
    connect = stack.endpoints["connect_url"]
    config = requests.get(f"{connect}/connectors/hub-pos/config", timeout=10).json()
    assert config["database.password"].startswith("${file:")
    secret = json.loads((stack.state_dir / "secrets" / "passwords.json").read_text())["pos.cdc"]
    assert secret not in json.dumps(config)
    for log in (stack.state_dir / "logs").glob("*.log"):
        assert secret not in log.read_text(errors="replace"), log


def test_services_bind_to_loopback_only(stack):
    listening = Path("/proc/net/tcp").read_text().splitlines()[1:]
    ports = {int(stack.env[k]) for k in ("HUB_KAFKA_PORT", "HUB_KAFKA_CONTROLLER_PORT",
                                         "HUB_CONNECT_PORT", "HUB_POS_PG_PORT")}  # fmt: skip
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
    assert len(pids) == 3  # postgres-pos, kafka, connect
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
