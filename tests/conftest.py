from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def load_recorded(name: str) -> dict[str, Any]:
    """A Debezium record captured from the real connector (tests/tools/record_pos_stock.py)."""
    return dict(json.loads((FIXTURES / "debezium" / f"{name}.json").read_text()))


@pytest.fixture
def recorded() -> Any:
    def get(name: str) -> tuple[bytes | None, bytes | None]:
        record = load_recorded(name)
        key = record["key"].encode() if record["key"] is not None else None
        value = record["value"].encode() if record["value"] is not None else None
        return key, value

    return get
