from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from hub.core.transforms import (
    build_transform,
    e164,
    email,
    epoch_days,
    epoch_micros,
    epoch_millis,
    gtin,
    iso_datetime,
    lower,
    name_part,
    scale,
    title,
    to_bool,
    to_decimal,
    to_int,
    to_str,
    trim,
    value_map,
)  # fmt: skip
from hub.errors import InvalidEvent


def test_trim_strips_char_padding_and_empties_to_none():
    assert trim("PAR01   ") == "PAR01"
    assert trim("   ") is None
    with pytest.raises(InvalidEvent):
        trim(12)


def test_case():
    assert lower(" Marie.Curie@Example.FR ".strip()) == "marie.curie@example.fr"
    assert title("LE GALL") == "Le Gall"
    assert title("JEAN-PIERRE") == "Jean-Pierre"
    assert title("DE LA FONTAINE") == "De La Fontaine"


@pytest.mark.parametrize(("raw", "exact"), [("12.375", "12.375"), (7, "7"), ("-3.10", "-3.10"),
                                            (Decimal("1.5"), "1.5")])  # fmt: skip
def test_decimal_is_exact(raw, exact):
    assert to_decimal(raw) == Decimal(exact)
    assert str(to_decimal(raw)) == exact


@pytest.mark.parametrize("raw", [1.5, True, "abc", "NaN", "Infinity", None, [1]])
def test_decimal_refuses_floats_and_garbage(raw):
    with pytest.raises(InvalidEvent):
        to_decimal(raw)


def test_scale_pads_but_never_rounds_away_digits():
    assert str(scale(3)("12.5")) == "12.500"
    assert str(scale(2)(Decimal("19.9"))) == "19.90"
    with pytest.raises(InvalidEvent, match="more decimals"):
        scale(2)("19.905")


def test_int_str_bool():
    assert to_int("42") == 42 and to_int(-3) == -3
    assert to_str(900001) == "900001"
    assert to_bool(True) is True and to_bool(0) is False
    for bad, fn in (("4.2", to_int), (True, to_int), (None, to_str), ("yes", to_bool)):
        with pytest.raises(InvalidEvent):
            fn(bad)


def test_temporal_types_as_debezium_sends_them():
    assert epoch_micros(1795163400000000) == datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    assert epoch_millis(1795420800000) == datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    assert epoch_days(18033) == datetime(2019, 5, 17, tzinfo=UTC)
    assert iso_datetime("2026-11-23T09:00:00.000000Z") == datetime(2026, 11, 23, 9, tzinfo=UTC)
    with pytest.raises(InvalidEvent, match="no offset"):
        iso_datetime("2026-11-23T09:00:00")
    with pytest.raises(InvalidEvent):
        epoch_millis("1795420800000")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("01 42 68 53 00", "+33142685300"), ("0612345678", "+33612345678"),
     ("+33 6 98 76 54 32", "+33698765432"), ("+44 20 7946 0958", "+442079460958"), ("  ", None)],
)  # fmt: skip
def test_e164_defaults_french_national_numbers_to_plus_33(raw, expected):
    assert e164("FR")(raw) == expected


@pytest.mark.parametrize("raw", ["12", "not a phone", "01 42"])
def test_e164_rejects_invalid_numbers(raw):
    with pytest.raises(InvalidEvent, match="e164"):
        e164("FR")(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(" Marc.Fontaine@Example.FR ", "marc.fontaine@example.fr"), ("jean_paul@x.fr", "jean_paul@x.fr"),
     ("françoise.morel@example.fr", "françoise.morel@example.fr"), ("   ", None)],
)  # fmt: skip
def test_email_is_trimmed_and_lower_cased(raw, expected):
    assert email(raw) == expected


@pytest.mark.parametrize(
    "raw", ["not an email", "marc.fontaine@", "a@b", "@example.fr", "a b@x.fr"]
)
def test_an_email_that_is_no_email_is_refused_with_what_is_wrong(raw):
    with pytest.raises(InvalidEvent, match="email: cannot handle"):
        email(raw)


@pytest.mark.parametrize(
    ("full", "order", "given", "family"),
    [
        ("DUPONT Jean", "family_first", "Jean", "Dupont"),
        ("LE GALL Anne-Sophie", "family_first", "Anne-Sophie", "Le Gall"),
        ("DE LA FONTAINE Marc", "family_first", "Marc", "De La Fontaine"),
        ("LEFÈVRE Éric", "family_first", "Éric", "Lefèvre"),
        ("DUPONT JEAN", "family_first", "Jean", "Dupont"),
        ("Dupont Jean", "family_first", "Jean", "Dupont"),
        ("Jean Dupont", "given_first", "Jean", "Dupont"),
        ("Jean-Pierre Le Gall", "given_first", "Jean-Pierre", "Le Gall"),
        ("Cher", "given_first", "Cher", None),
    ],
)
def test_name_split(full, order, given, family):
    assert name_part("given", order)(full) == given
    assert name_part("family", order)(full) == family


def test_value_map_refuses_unknown_codes():
    status = value_map({"O": "open", "C": "completed", "V": "voided"})
    assert status("C") == "completed"
    assert status("C ") == "completed"
    with pytest.raises(InvalidEvent, match="not one of"):
        status("X")


def test_build_transform_by_name_and_with_argument():
    assert build_transform("trim")(" a ") == "a"
    assert build_transform({"scale": 1})("2") == Decimal("2.0")
    assert (
        build_transform({"name": {"part": "family", "order": "family_first"}})("DUPONT Jean")
        == "Dupont"
    )
    for bad in ("rot13", {"scale": 1, "trim": 2}, {"trim": 1}, 42):
        with pytest.raises(ValueError):
            build_transform(bad)


@pytest.mark.parametrize(
    ("raw", "key"),
    [("3760000000024", "3760000000024"),      # EAN-13 as is
     ("03760000000024", "3760000000024"),     # GTIN-14, indicator 0: the EAN-13 inside
     ("00012345600012", "0012345600012"),     # GTIN-14 of a UPC-A: its leading zeros kept
     ("012345600012", "0012345600012"),       # GTIN-12 (UPC-A), padded
     (" 96385074 ", "0000096385074"),         # GTIN-8, padded; blanks around are fine
     (3760000000024, "3760000000024")],       # an integer column
)  # fmt: skip
def test_gtin_gives_the_13_digit_key_of_every_gtin_length(raw, key):
    assert gtin(raw) == key


@pytest.mark.parametrize(
    ("raw", "why"),
    [("3760000000025", "wrong check digit"),
     ("13760000000021", "indicator digit 1: a packaging level"),
     ("93760000000027", "indicator digit 9: a variable-measure item"),
     ("376000000002", "wrong check digit"),
     ("37600000", "wrong check digit"),
     ("376000000002411", "15 digits"),
     ("37600-0000024", "not digits"),
     (None, "not digits")],
)  # fmt: skip
def test_gtin_refuses_what_is_not_an_article_key_and_says_why(raw, why):
    with pytest.raises(InvalidEvent, match=why) as bad:
        gtin(raw)
    assert bad.value.reason == "bad_value"
