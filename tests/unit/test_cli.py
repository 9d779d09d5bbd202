"""Every `hub` command answers a bad argument or an unknown id with a short message and a non-zero
exit, never a traceback; the message says what exists or what to do. A new command must add its
case here (the test lists them all)."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from hub.cli import main
from hub.connectors import load_definitions

# One bad invocation per command, and a word the answer must contain. None of them reaches a
# database, Kafka or Connect: they fail on the argument itself.
BAD = {
    "stack up": (["stack", "up", "extra"], "unexpected extra argument"),
    "stack down": (["stack", "down", "--purge=yes"], "does not take a value"),
    "stack status": (["stack", "status", "--yaml"], "no such option"),
    "stack env": (["stack", "env", "pos"], "unexpected extra argument"),
    "stack fetch": (["stack", "fetch", "kafka"], "unexpected extra argument"),
    "connectors apply": (
        ["connectors", "apply", "--dry-run", "no-such-system"],
        "defined: " + ", ".join(sorted(load_definitions())),
    ),
    "worker": (["worker", "--loglevel", "loud"], "'loud' is not one of"),
    "api": (["api", "--port", "http"], "'http' is not a valid integer"),
    "tail": (["tail", "inventory"], "did you mean unified.inventory"),
    "simulate": (["simulate", "--rate", "-1"], "not in the range"),
    "demo": (["demo", "--rate", "0"], "not in the range"),
    "bench": (["bench", "--rates", "fast"], "whole changes per second"),
    "reconcile": (["reconcile", "--wait", "-5"], "not in the range"),
    "repair": (["repair"], "give the KEYS to repair, or --differing"),
    "dlq list": (["dlq", "list", "--limit", "-1"], "not in the range"),
    "dlq replay": (["dlq", "replay", "--reason", "typo"], "'typo' is not one of"),
    "schemas write": (["schemas", "write", "v3"], "unexpected extra argument"),
    "stock check": (["stock", "check", "network.yaml"], "unexpected extra argument"),
    "stock explain": (
        ["stock", "explain", "3760000000017", "--location", "store:PAR01", "--group", "stores"],
        "--location or --group, not both",
    ),
    "customer check": (["customer", "check", "identity.yaml"], "unexpected extra argument"),
    "customer explain": (["customer", "explain"], "missing argument 'ref'"),
    "customer link": (["customer", "link", "shop:1", "shop:1", "--why", "x"], "two different"),
    "customer unlink": (
        ["customer", "unlink", "g-0123456789abcdef", "shop:1", "--why", "x"],
        "a record ref like shop:17",
    ),
    "customer erase": (["customer", "erase", "Marie Dupont", "--why", "x"], "a golden id (g-"),
    "secrets set": (["secrets", "set", "nope.password"], "defined: erp.password,"),
    "secrets list": (["secrets", "list", "--all"], "no such option"),
    "topics apply": (["topics", "apply", "raw.pos.stock"], "unexpected extra argument"),
}


def commands(group: click.Group = main, prefix: str = "") -> list[str]:
    found = []
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            found += commands(command, f"{path} ")
        else:
            found.append(path)
    return found


def test_every_command_has_a_bad_argument_case():
    assert sorted(commands()) == sorted(BAD)


@pytest.mark.parametrize("command", sorted(BAD))
def test_a_bad_argument_gets_a_short_answer_and_a_non_zero_exit(command):
    argv, expected = BAD[command]
    result = CliRunner().invoke(main, argv)
    output = " ".join(result.output.split())  # rich may wrap long lines
    assert result.exit_code not in (0, None), output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # never a traceback
    assert "Traceback" not in output
    assert expected.lower() in output.lower(), output
    assert len(result.output.strip().splitlines()) <= 4, output


def test_bench_through_the_stack_needs_the_identity_measure():
    result = CliRunner().invoke(main, ["bench", "--through-stack"])
    assert result.exit_code == 2 and "--through-stack goes with --identity" in result.output
