"""The small transforms integration work needs, each a pure function of one value.

A transform receives ``None`` only when it says so (``passes_none``); otherwise ``None`` flows
through unchanged. Each raises ``InvalidEvent("bad_value", …)`` for a value it cannot handle.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from stdnum import ean
from stdnum.exceptions import ValidationError as NumberError

from hub.errors import InvalidEvent

Transform = Callable[[Any], Any]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _bad(name: str, value: Any, why: str = "") -> InvalidEvent:
    return InvalidEvent("bad_value", f"{name}: cannot handle {value!r}{': ' + why if why else ''}")


def trim(value: Any) -> Any:
    """Strip blanks, CHAR(n) padding included; an empty string becomes None."""
    if not isinstance(value, str):
        raise _bad("trim", value, "not text")
    return value.strip() or None


def lower(value: Any) -> str:
    if not isinstance(value, str):
        raise _bad("lower", value, "not text")
    return value.lower()


def upper(value: Any) -> str:
    if not isinstance(value, str):
        raise _bad("upper", value, "not text")
    return value.upper()


def title(value: Any) -> str:
    """Title case that keeps hyphens and particles readable: "LE GALL" → "Le Gall"."""
    if not isinstance(value, str):
        raise _bad("title", value, "not text")
    return " ".join("-".join(p.capitalize() for p in word.split("-")) for word in value.split())


def to_decimal(value: Any) -> Decimal:
    """Exact decimal from Debezium's string mode, an integer, or a decimal string. Never a float."""
    if isinstance(value, bool | float):
        raise _bad("decimal", value, "floats are not exact; use decimal.handling.mode=string")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise _bad("decimal", value) from None
        if not result.is_finite():
            raise _bad("decimal", value, "not finite")
        return result
    raise _bad("decimal", value)


def scale(places: int) -> Transform:
    """Quantize to ``places`` decimals; refuses to round away digits (that would lose data)."""
    quantum = Decimal(1).scaleb(-places)

    def apply(value: Any) -> Decimal:
        number = to_decimal(value)
        scaled = number.quantize(quantum)
        if scaled != number:
            raise _bad(f"scale {places}", value, "has more decimals than the target scale")
        return scaled

    return apply


def to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise _bad("int", value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise _bad("int", value)


def to_str(value: Any) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        raise _bad("str", value)
    return str(value)


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    raise _bad("bool", value)


def epoch_micros(value: Any) -> datetime:
    """Debezium MicroTimestamp (``timestamp without time zone``, DATETIME(4-6)) → UTC datetime."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise _bad("epoch_micros", value)
    return EPOCH + timedelta(microseconds=value)


def epoch_millis(value: Any) -> datetime:
    """Debezium Timestamp (MariaDB DATETIME(0-3)) → UTC datetime (naive source times read as UTC)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise _bad("epoch_millis", value)
    return EPOCH + timedelta(milliseconds=value)


def epoch_days(value: Any) -> datetime:
    """Debezium Date (days since 1970-01-01) → that day at 00:00 UTC (models carry datetimes)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise _bad("epoch_days", value)
    return EPOCH + timedelta(days=value)


def iso_datetime(value: Any) -> datetime:
    """Debezium ZonedTimestamp (``timestamptz``, an ISO-8601 string with offset) → datetime."""
    if not isinstance(value, str):
        raise _bad("iso_datetime", value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _bad("iso_datetime", value) from None
    if parsed.tzinfo is None:
        raise _bad("iso_datetime", value, "no offset")
    return parsed


def e164(region: str) -> Transform:
    """A phone number in E.164; national numbers are read in ``region`` (e.g. FR → +33)."""

    def apply(value: Any) -> str | None:
        if not isinstance(value, str):
            raise _bad("e164", value, "not text")
        if not value.strip():
            return None
        return _e164(value, region)

    return apply


@functools.lru_cache(maxsize=65_536)
def _e164(value: str, region: str) -> str:
    """``value`` in E.164 (phonenumbers' parsing is the costliest step of a customer change, and
    a customer's number is the same from one change to the next: remembered)."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise _bad("e164", value, str(exc)) from None
    if not phonenumbers.is_valid_number(number):
        raise _bad("e164", value, "not a valid number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def email(value: Any) -> str | None:
    """An email address, trimmed and lower-cased, checked for its form (not its delivery): an
    address that is no address is refused rather than compared with others."""
    if not isinstance(value, str):
        raise _bad("email", value, "not text")
    text = value.strip()
    if not text:
        return None
    try:
        validate_email(text, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise _bad("email", value, str(exc)) from None
    return text.lower()


def name_part(part: str, order: str) -> Transform:
    """One part of a full name.

    ``order: given_first`` — "Jean-Pierre Le Gall": the first word is the given name, the rest the
    family name. ``order: family_first`` — "LE GALL Jean-Pierre": the leading upper-case words are the
    family name (title-cased), the rest the given name; with no upper-case word, the first word.
    """
    if part not in ("given", "family") or order not in ("given_first", "family_first"):
        raise ValueError(
            f"name_part: part given|family and order given_first|family_first, got {part}, {order}"
        )

    def apply(value: Any) -> str | None:
        if not isinstance(value, str):
            raise _bad("name_part", value, "not text")
        words = value.split()
        if not words:
            return None
        if order == "given_first":
            given, family = words[:1], words[1:]
        else:
            cut = 0
            while cut < len(words) and words[cut].isupper():
                cut += 1
            cut = cut or 1
            if cut == len(words) and len(words) > 1:
                cut = len(words) - 1  # all upper case: the last word is the given name
            family, given = words[:cut], words[cut:]
            family = [title(w) if w.isupper() else w for w in family]
            given = [title(w) if w.isupper() else w for w in given]
        chosen = given if part == "given" else family
        return " ".join(chosen) or None

    return apply


def gtin(value: Any) -> str:
    """A GTIN-8, -12 (UPC-A), -13 (EAN-13) or -14 → the 13-digit key the hub uses for articles.

    The check digit is verified (python-stdnum). Shorter GTINs are left-padded with zeros, as GS1
    pads them in a GTIN-14 field. A GTIN-14 is a trade item's EAN-13 only with indicator digit 0;
    indicators 1-8 name a case or pallet of it and 9 a variable-measure item, neither of which is
    the article a channel sells: a bad value, said so.
    """
    text = str(value).strip() if isinstance(value, str | int) else None
    if text is None or not text.isdigit():
        raise _bad("gtin", value, "not digits")
    if len(text) not in (8, 12, 13, 14):
        raise _bad("gtin", value, f"{len(text)} digits; a GTIN has 8, 12, 13 or 14")
    try:
        ean.validate(text)
    except NumberError:
        raise _bad("gtin", value, "wrong check digit") from None
    if len(text) == 14:
        if text[0] != "0":
            kind = "variable-measure item" if text[0] == "9" else "packaging level (case, pallet)"
            raise _bad("gtin", value, f"indicator digit {text[0]}: a {kind}, not an EAN-13 article")
        return text[1:]
    return text.zfill(13)


def value_map(table: Mapping[str, Any]) -> Transform:
    """Translate codes (e.g. O/C/V → open/completed/voided); an unknown code is an error."""

    def apply(value: Any) -> Any:
        key = value.strip() if isinstance(value, str) else value
        if key not in table:
            raise _bad("map", value, f"not one of {sorted(map(str, table))}")
        return table[key]

    return apply


@dataclass(frozen=True)
class TransformSpec:
    name: str
    build: Callable[[Any], Transform] | None = None  # for transforms that take an argument
    plain: Transform | None = None


TRANSFORMS: dict[str, TransformSpec] = {
    spec.name: spec
    for spec in (
        TransformSpec("trim", plain=trim),
        TransformSpec("lower", plain=lower),
        TransformSpec("upper", plain=upper),
        TransformSpec("title", plain=title),
        TransformSpec("decimal", plain=to_decimal),
        TransformSpec("int", plain=to_int),
        TransformSpec("str", plain=to_str),
        TransformSpec("bool", plain=to_bool),
        TransformSpec("epoch_micros", plain=epoch_micros),
        TransformSpec("epoch_millis", plain=epoch_millis),
        TransformSpec("epoch_days", plain=epoch_days),
        TransformSpec("iso_datetime", plain=iso_datetime),
        TransformSpec("gtin", plain=gtin),
        TransformSpec("email", plain=email),
        TransformSpec("scale", build=lambda arg: scale(int(arg))),
        TransformSpec("e164", build=lambda arg: e164(str(arg))),
        TransformSpec("name", build=lambda arg: name_part(arg["part"], arg["order"])),
        TransformSpec("map", build=lambda arg: value_map(dict(arg))),
    )
}


def build_transform(spec: Any) -> Transform:
    """``"trim"`` or ``{"scale": 3}`` → the transform. Raises ``ValueError`` for an unknown one."""
    if isinstance(spec, str):
        known = TRANSFORMS.get(spec)
        if known is None or known.plain is None:
            raise ValueError(f"unknown transform {spec!r}; known: {sorted(TRANSFORMS)}")
        return known.plain
    if isinstance(spec, dict) and len(spec) == 1:
        ((name, arg),) = spec.items()
        known = TRANSFORMS.get(name)
        if known is None or known.build is None:
            raise ValueError(
                f"unknown transform {name!r} with an argument; known: {sorted(TRANSFORMS)}"
            )
        return known.build(arg)
    raise ValueError(f"a transform is a name or a one-key mapping, not {spec!r}")
