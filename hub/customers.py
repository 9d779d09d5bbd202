"""The identity rules file read from disk (the rules themselves: ``hub.core.identity``), and the
``hub customer`` commands: ``explain`` (why a customer is who it is), ``link`` / ``unlink``
(manual decisions, written to ``hub.customer.requests`` for the identity stage)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer
from rich.console import Console
from rich.table import Table

from hub.connectors import read_rule_file
from hub.core.golden import (
    GOLDEN,
    LINKS,
    RECORDS,
    REQUESTS,
    Erasure,
    erasure_record,
    request_decision,
    request_of,
    request_record,
)
from hub.core.identity import (
    Decision,
    Decisions,
    IdentityRulesError,
    Person,
    Rules,
    block_index,
    blocking_keys,
    explain,
    parse_rules,
    reachable,
    resolve,
)
from hub.errors import InvalidEvent, StackError
from hub.kafka_io import read_compacted, read_to_end
from hub.settings import HubSettings, get_settings
from hub.topics import registry


def load_rules(path: Path | None = None) -> Rules:
    """The identity rules the settings name (``HUB_IDENTITY_FILE``), validated; raises
    ``IdentityRulesError`` naming the file and what is wrong in it."""
    path = path or get_settings().identity_rules
    return parse_rules(read_rule_file(path, "identity rules", IdentityRulesError), str(path))


def erasure_salt(settings: HubSettings) -> bytes:
    """The key of the erased records' hashes: ``HUB_ERASURE_SALT``, or the local stack's."""
    if settings.erasure_salt is not None:
        return settings.erasure_salt.get_secret_value().encode()
    from hub.stack.secrets import StackSecrets

    return StackSecrets(settings.state_dir).password("hub.erasure-salt").get_secret_value().encode()


# -- manual decisions


def decide(settings: HubSettings, kind: str, a: str, b: str, who: str, why: str) -> Decision:
    """Write a manual decision for the identity stage (it applies it when it reads it)."""
    decision = request_decision(orjson.dumps({
        "kind": kind, "a": a, "b": b, "who": who, "why": why, "at": _now(),
    }))  # fmt: skip
    _send(settings, *request_record(decision))
    return decision


def erase(settings: HubSettings, ref: str, who: str, why: str) -> Erasure:
    """Ask the identity stage to erase the customer of ``ref`` (a golden id or a record ref).
    Raises ``KeyError`` for a golden id no record links to."""
    if ref.startswith("g-") and ref not in set(read_links(settings).values()):
        raise KeyError(f"no customer {ref} on {registry()[LINKS].name}")
    erasure = Erasure(ref, who, why, _now())
    _send(settings, *erasure_record(erasure))
    return erasure


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _send(settings: HubSettings, key: bytes, value: bytes) -> None:
    producer = Producer({"bootstrap.servers": settings.bootstrap, "enable.idempotence": True,
                         "acks": "all", "log_level": 3})  # fmt: skip
    failures: list[str] = []
    topic = registry()[REQUESTS].name
    producer.produce(topic, value, key,
                     on_delivery=lambda err, _: failures.append(str(err)) if err else None)  # fmt: skip
    left = producer.flush(30)
    if left or failures:
        raise StackError(f"could not write to {topic}: {failures or f'{left} not delivered'}; "
                         "is Kafka up (hub stack status)?")  # fmt: skip


def read_decisions(settings: HubSettings) -> Decisions:
    """Every manual decision in force, in the order they were written."""
    made = []
    for message in read_to_end(settings.bootstrap, [registry()[REQUESTS]]):
        try:
            request = request_of(message.value())
        except InvalidEvent:
            continue  # a tombstone (an erasure applied) or a bad record (the stage's DLQ has it)
        if isinstance(request, Decision):
            made.append(request)
    return Decisions.of(made)


# -- explain


def read_records(settings: HubSettings) -> dict[str, dict[str, Any]]:
    """What ``unified.customer.records`` holds now: ref → record."""
    return read_compacted(settings.bootstrap, registry()[RECORDS])


def read_golden(settings: HubSettings) -> dict[str, dict[str, Any]]:
    """What ``unified.customer`` holds now: golden id → golden record."""
    return read_compacted(settings.bootstrap, registry()[GOLDEN])


def read_links(settings: HubSettings) -> dict[str, str]:
    """What ``unified.customer.links`` holds now: record ref → golden id."""
    return {
        ref: link["golden_id"]
        for ref, link in read_compacted(settings.bootstrap, registry()[LINKS]).items()
    }


def explanation(settings: HubSettings, rules: Rules, ref: str) -> dict[str, Any]:
    """Why the customer of ``ref`` (a record ref or a golden id) is who it is: the identity
    stage's resolution made again from what ``unified.customer.records`` holds, with the same
    rules and decisions (the result does not depend on the order records arrived in), and the
    golden id ``unified.customer.links`` holds for each member. Raises ``KeyError`` for a ref
    or golden id no customer has."""
    records = read_records(settings)
    people = [Person.of_record(key, value) for key, value in records.items()]
    links = read_links(settings)
    decisions = read_decisions(settings)
    seeds = [ref]
    if ref.startswith("g-"):
        seeds = sorted(member for member, gid in links.items() if gid == ref)
        if not seeds:
            raise KeyError(f"no record links to {ref} on {registry()[LINKS].name}")
    elif ref not in records:
        raise KeyError(f"no record {ref} on {registry()[RECORDS].name}")
    blocks = block_index(rules, people)
    component = reachable(rules, people, seeds, decisions, blocks)
    resolution = resolve(rules, component, decisions, lambda key: len(blocks.get(key, ())))
    found = explain(rules, resolution, component, seeds[0], decisions)
    when = {key: value.get("source_committed_at") for key, value in records.items()}
    for link in found["links"]:
        link["when"] = max(filter(None, (when.get(link["a"]), when.get(link["b"]))), default=None)
    found["records"] = {member: records[member] for member in found["members"]}
    found["published"] = {member: links.get(member) for member in found["members"]}
    found["storms"] = {key: count for key, count in resolution.storms.items()
                       if any(key in blocking_keys(rules, p) for p in component
                              if p.ref in found["members"])}  # fmt: skip
    return found


def print_explanation(console: Console, found: Mapping[str, Any]) -> None:
    """``explanation`` as tables."""
    gid = found["golden_id"]
    published = set(found["published"].values())
    state = ("[green]as published[/]" if published == {gid} else
             f"[yellow]published as {', '.join(sorted(map(str, published)))}: the stage has not "
             "caught up yet[/]")  # fmt: skip
    console.print(f"[bold]{gid}[/]: {len(found['members'])} records, rules version "
                  f"{found['rules_version']} ({state})")  # fmt: skip
    fields = Table(title="golden record", title_justify="left")
    for column in ("field", "value", "from record", "policy"):
        fields.add_column(column)
    for name, survivor in found["fields"].items():
        fields.add_row(name, str(survivor["value"]), survivor["record"], survivor["policy"])
    console.print(fields)
    members = Table(title="members", title_justify="left")
    for column in ("record", "email", "phone", "given", "family", "postcode", "updated"):
        members.add_column(column)
    for ref, record in found["records"].items():
        members.add_row(ref, *(str(record.get(name) or "") for name in (
            "email", "phone_e164", "given_name", "family_name", "postcode", "updated_at")))  # fmt: skip
    console.print(members)
    if found["links"]:
        links = Table(title="why they are one person", title_justify="left")
        for column in ("record", "record", "rule", "matched on", "score", "since"):
            links.add_column(column)
        for link in found["links"]:
            links.add_row(link["a"], link["b"], link["rule"], ", ".join(link["features"]),
                          f"{link['score']:.3f}", str(link.get("when") or ""))  # fmt: skip
        console.print(links)
    kept = [(c["a"], c["b"], f"{c['rule']} ({c['score']:.3f}) cut: {c['kept_apart_by']['rule']}",
             c["kept_apart_by"]["detail"]) for c in found["cut"]]  # fmt: skip
    kept += [(a["a"], a["b"], a["rule"], a["detail"]) for a in found["apart"]]
    if kept:
        table = Table(title="why not: kept apart", title_justify="left")
        for column in ("record", "record", "rule", "detail"):
            table.add_column(column)
        for row in kept:
            table.add_row(*row)
        console.print(table)
    for key, count in found["storms"].items():
        console.print(f"[yellow]merge storm[/]: {key} is held by {count} records, over the "
                      "limit: it links nothing", highlight=False)  # fmt: skip
    for made in found["decisions"]:
        console.print(f"decision: [bold]{made['kind']}[/] {made['a']} {made['b']} by {made['who']}"
                      f" at {made['at']}: {made['why']}", highlight=False)  # fmt: skip
