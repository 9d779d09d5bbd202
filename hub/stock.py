"""The stock network file, read from disk (the rules themselves: ``hub.core.network``)."""

from __future__ import annotations

from pathlib import Path

import yaml

from hub.core.network import Network, NetworkError, parse_network
from hub.settings import get_settings


def load_network(path: Path | None = None) -> Network:
    """The network the settings name (``HUB_NETWORK_FILE``), validated; raises ``NetworkError``
    naming the file and what is wrong in it."""
    path = path or get_settings().network_file
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise NetworkError(f"cannot read the stock network {path}: {exc}") from exc
    return parse_network(document, str(path))
