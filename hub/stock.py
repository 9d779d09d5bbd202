"""The stock network file read from disk (the rules: ``hub.core.network``), and ``hub stock
explain``: an article's current figures and every number behind them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from hub.connectors import read_rule_file
from hub.core.availability import TOPIC
from hub.core.network import Network, NetworkError, parse_network
from hub.kafka_io import read_to_end
from hub.settings import HubSettings, get_settings
from hub.topics import registry


def load_network(path: Path | None = None) -> Network:
    """The network the settings name (``HUB_NETWORK_FILE``), validated; raises ``NetworkError``
    naming the file and what is wrong in it."""
    path = path or get_settings().stock_network
    return parse_network(read_rule_file(path, "stock network", NetworkError), str(path))


def read_figures(settings: HubSettings, gtin: str) -> dict[str, dict[str, Any]]:
    """The current availability figures of one article: key → record (read to the topic's end)."""
    figures: dict[str, dict[str, Any]] = {}
    prefix = f"{gtin}@".encode()
    for message in read_to_end(settings.bootstrap, [registry()[TOPIC]]):
        key = message.key() or b""
        if key.startswith(prefix):
            raw = message.value()
            if raw is None:
                figures.pop(key.decode(), None)
            else:
                figures[key.decode()] = orjson.loads(raw)
    return figures


def chosen(figures: dict[str, dict[str, Any]], gtin: str, location: str | None,
           group: str | None) -> dict[str, dict[str, Any]]:  # fmt: skip
    """The figures asked for: one location's, one group's, or all (locations first)."""
    if location is not None:
        wanted = [f"{gtin}@{location}"]
    elif group is not None:
        wanted = [f"{gtin}@group:{group.removeprefix('group:')}"]
    else:
        wanted = sorted(figures, key=lambda k: (figures[k]["scope"] == "group", k))
    return {key: figures[key] for key in wanted if key in figures}


def print_explanation(console: Console, figures: dict[str, dict[str, Any]]) -> None:
    """Each figure and every number behind it, as tables."""
    for key, figure in figures.items():
        rule = figure["rule"]
        where = (
            f"group {rule['group']} (channel {rule['channel']})"
            if rule["group"]
            else key.split("@")[1]
        )
        title = (f"[bold]{figure['available']} {figure['unit']} available[/] at {where}: "
                 f"{figure['contributing']} of {figure['locations']} locations contribute")  # fmt: skip
        table = Table(title=title, title_justify="left")
        for column in ("location", "on hand", "reserved", "safety", "kept back", "unsellable",
                       "available", "gives", "source", "position", "committed at"):  # fmt: skip
            table.add_column(column, justify="left" if column in ("location", "source", "position",
                                                                  "committed at") else "right")  # fmt: skip
        for s in figure["explanation"]:
            table.add_row(s["location_id"], s["on_hand"], s["reserved"], s["safety_stock"],
                          s["kept_back"], s["unsellable"], s["available"], s["contributes"],
                          s["source_system"], s["source_position"], s["source_committed_at"])  # fmt: skip
        console.print(table)
        rules = ", ".join(rule["safety_rules"]) or "none"
        console.print(f"  shortfall {figure['shortfall']}; safety rules: {rules}; network version "
                      f"{rule['network_version']} ({rule['network_digest']}); made by "
                      f"{figure['source_system']} {figure['source_position']} at "
                      f"{figure['source_committed_at']}", highlight=False)  # fmt: skip
