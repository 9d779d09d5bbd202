"""The stock network file: the repository's own loads; every name it uses must exist."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

from hub.core.network import NetworkError, parse_network
from hub.stock import load_network

BASE: dict[str, Any] = {
    "version": 3,
    "locations": {
        "warehouse:W001": {"type": "warehouse"},
        "store:PAR01": {"type": "store", "tags": ["ship-from-store"]},
        "store:LYO01": {"type": "store"},
    },
    "groups": {
        "web": {"channel": "web", "types": ["warehouse"], "tags": ["ship-from-store"]},
        "collect:{code}": {"channel": "collect", "each": True, "types": ["store"]},
    },
    "safety": [
        {"name": "walk-in", "channels": ["web"], "types": ["store"], "units": 2},
        {"name": "display", "locations": ["store:LYO01"], "units": "1.5"},
    ],
    "alerts": [
        {"name": "low", "kind": "low_stock", "scope": "group", "channels": ["web"],
         "threshold": 5, "band": 2},
        {"name": "oos", "kind": "out_of_stock", "scope": "location", "types": ["store"], "band": 1},
    ],
}  # fmt: skip


def changed(**parts: Any) -> dict[str, Any]:
    document = copy.deepcopy(BASE)
    for name, value in parts.items():
        document[name] = value
    return document


def test_the_repositorys_network_loads():
    network = load_network()
    assert network.version >= 1
    web = network.groups["web-fulfilment"]
    assert {"warehouse:W001", "warehouse:W002", "web:1", "store:PAR01"} <= web.members
    assert "store:MRS01" not in web.members  # ships nothing
    assert network.groups["click-and-collect:PAR01"].members == {"store:PAR01"}


def test_groups_selectors_and_each():
    network = parse_network(BASE)
    assert network.groups["web"].members == {"warehouse:W001", "store:PAR01"}
    assert set(network.groups) == {"web", "collect:PAR01", "collect:LYO01"}
    assert [g.name for g in network.groups_of["store:PAR01"]] == ["collect:PAR01", "web"]
    assert network.groups_of["store:LYO01"][0].channel == "collect"


def test_safety_per_location_and_per_channel():
    network = parse_network(BASE)
    assert network.safety("store:PAR01") == (Decimal(0), ())
    assert network.safety("store:PAR01", "web") == (Decimal(2), ("walk-in",))
    assert network.safety("store:LYO01") == (Decimal("1.5"), ("display",))
    assert network.safety("warehouse:W001", "web") == (Decimal(0), ())


def test_alert_rules_by_scope():
    network = parse_network(BASE)
    assert [r.name for r in network.alert_rules("store:PAR01", None)] == ["oos"]
    assert network.alert_rules("warehouse:W001", None) == []
    assert [r.name for r in network.alert_rules(None, network.groups["web"])] == ["low"]
    assert network.alert_rules(None, network.groups["collect:PAR01"]) == []


def test_the_digest_follows_every_rule():
    assert parse_network(BASE).digest == parse_network(copy.deepcopy(BASE)).digest
    other = changed(safety=[{**BASE["safety"][0], "units": 3}, BASE["safety"][1]])
    assert parse_network(other).digest != parse_network(BASE).digest


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (changed(groups={"web": {"channel": "web", "locations": ["store:NOPE1"]}}),
         "location 'store:NOPE1' is not declared"),
        (changed(groups={"web": {"channel": "web", "tags": ["nowhere"]}}), "no location has the tag"),
        (changed(groups={"web": {"channel": "web"}}), "chooses no location"),
        (changed(groups={"c:{code}": {"channel": "c", "types": ["store"]}}), "needs each: true"),
        (changed(groups={"c": {"channel": "c", "each": True, "types": ["store"]}}),
         "each: true needs {code}"),
        (changed(locations={"store:PAR01": {"type": "warehouse"}}), "its id says one type"),
        (changed(locations={"PAR01": {"type": "store"}}), "ids are <type>:<code>"),
        (changed(safety=[{"name": "x", "channels": ["mobile"], "types": ["store"], "units": 1}]),
         "no group sells for channel 'mobile'"),
        (changed(safety=[{"name": "x", "types": ["store"], "units": -1}]), "greater than or equal"),
        (changed(alerts=[{"name": "a", "kind": "low_stock", "scope": "group", "groups": ["nope"]}]),
         "no group 'nope'"),
        (changed(alerts=[{"name": "a", "kind": "oversell", "scope": "location", "threshold": 2}]),
         "oversell takes no threshold"),
        (changed(alerts=[{"name": "a", "kind": "out_of_stock", "scope": "group", "types": ["store"]}]),
         "a group alert chooses groups"),
        (changed(alerts=[{"name": "a", "kind": "low_stock", "scope": "location"}] * 2),
         "the name is used twice"),
        (changed(alerts=[{"name": "a", "kind": "running_low", "scope": "location"}]), "kind"),
        (changed(extra=1), "extra"),
        ([1, 2], "expected a mapping"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)  # fmt: skip
def test_a_bad_network_is_refused_saying_what_and_where(document, message):
    with pytest.raises(NetworkError, match=r"net\.yaml") as caught:
        parse_network(document, "net.yaml")
    assert message in str(caught.value)


def test_a_missing_file_says_which(tmp_path):
    with pytest.raises(NetworkError, match="cannot read the stock network"):
        load_network(tmp_path / "network.yaml")
