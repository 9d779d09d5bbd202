"""Every dead-letter reason the code can give is listed, with what to do, in hub.errors.REASONS
and in the README."""

from __future__ import annotations

import re

from hub.errors import REASONS
from hub.settings import REPO_ROOT


def test_every_reason_raised_is_listed_with_what_to_do():
    raised = set()
    for path in (REPO_ROOT / "hub").rglob("*.py"):
        raised |= set(re.findall(r'InvalidEvent\(\s*"([a-z_]+)"', path.read_text()))
    assert raised, "the pattern found nothing: the test would pass for nothing"
    assert raised <= set(REASONS), sorted(raised - set(REASONS))
    assert all(len(advice) > 40 for advice in REASONS.values())


def test_the_readme_lists_every_reason():
    readme = (REPO_ROOT / "README.md").read_text()
    missing = [reason for reason in REASONS if f"| `{reason}` |" not in readme]
    assert not missing, missing
