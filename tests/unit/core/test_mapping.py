from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from hub.connectors import load_definitions
from hub.core.mapping import Expr, MappingSpec, Pending, compile_expr, compile_mapping, generate
from hub.errors import InvalidEvent
from tests.conftest import FIXTURES, recorded

NO_LOOKUP = lambda table, key: None  # noqa: E731


def ev(spec, row, lookup=NO_LOOKUP):
    """``spec`` on ``row``, evaluated by its compiled closures and by its generated code: both
    give the same value of the same type, or the same error."""
    expr = Expr.model_validate(spec)
    generated = generate({"field": expr})
    try:
        value = compile_expr(expr).evaluate(row, lookup)
    except (InvalidEvent, Pending) as error:
        with pytest.raises(type(error)) as same:
            generated(row, lookup)
        assert str(same.value) == str(error)
        raise
    (got,) = generated(row, lookup).values()
    assert (got, type(got)) == (value, type(value))
    return value


def test_column_const_and_transforms():
    assert ev({"col": "code", "then": ["trim", "lower"]}, {"code": " AB  "}) == "ab"
    assert ev({"const": "store"}, {}) == "store"
    assert ev({"col": "qty", "then": ["decimal", {"scale": 2}]}, {"qty": "3.5"}) == Decimal("3.50")


def test_none_flows_through_transforms():
    assert ev({"col": "phone", "then": ["trim", {"e164": "FR"}]}, {"phone": None}) is None


def test_missing_column_is_invalid():
    with pytest.raises(InvalidEvent, match="no column 'qty'"):
        ev({"col": "qty"}, {"quantity": 1})


def test_concat_and_sum_are_none_when_a_part_is_none():
    spec = {"concat": ["store:", {"col": "code", "then": ["trim"]}]}
    assert ev(spec, {"code": "PAR01 "}) == "store:PAR01"
    assert ev(spec, {"code": None}) is None
    assert ev({"sum": [{"col": "a"}, {"col": "b"}]}, {"a": 40, "b": "2"}) == Decimal(42)
    assert ev({"sum": [{"col": "a"}, {"col": "b"}]}, {"a": 40, "b": None}) is None


def test_sub_takes_the_others_from_the_first_exactly():
    spec = {"sub": [{"col": "total"}, {"col": "sellable"}, {"const": "0.5"}]}
    assert ev(spec, {"total": "10.250", "sellable": 7}) == Decimal("2.750")
    assert ev(spec, {"total": "10", "sellable": None}) is None
    assert ev({"sub": [{"col": "a"}, {"col": "b"}]}, {"a": 1, "b": 3}) == Decimal(-2)


def test_coalesce_gives_the_first_value_that_is_set():
    spec = {"coalesce": [{"col": "mobile", "then": ["trim"]}, {"col": "phone"}, {"const": "none"}]}
    assert ev(spec, {"mobile": "  ", "phone": "0142"}) == "0142"  # trim empties "  " to None
    assert ev(spec, {"mobile": "06", "phone": "0142"}) == "06"
    assert ev(spec, {"mobile": None, "phone": None}) == "none"


def test_lookup_reads_the_other_row_or_waits_for_it():
    spec = {"lookup": "shop.variant", "key": {"id": {"col": "variant_id"}}, "column": "barcode"}
    rows = {("shop.variant", 7): {"id": 7, "barcode": "3760000000017"}}

    def lookup(table, key):
        return rows.get((table, key["id"]))

    assert ev(spec, {"variant_id": 7}, lookup) == "3760000000017"
    with pytest.raises(Pending) as wait:
        ev(spec, {"variant_id": 8}, lookup)
    assert (wait.value.table, wait.value.key) == ("shop.variant", {"id": 8})
    assert ev(spec, {"variant_id": None}, lookup) is None  # no key, nothing to wait for


@pytest.mark.parametrize(
    "spec",
    [{}, {"col": "a", "const": 1}, {"lookup": "t", "column": "c"}, {"col": "a", "then": "trim"},
     {"col": "a", "colour": 1}, {"sub": [{"col": "a"}]}, {"coalesce": []}],
)  # fmt: skip
def test_malformed_expressions_are_refused(spec):
    with pytest.raises(ValidationError):
        Expr.model_validate(spec)


def test_unknown_transform_is_refused_when_compiling():
    with pytest.raises(ValueError, match="unknown transform"):
        compile_expr(Expr.model_validate({"col": "a", "then": ["rot13"]}))


def inventory_fields(**extra):
    return {
        "gtin": {"col": "ean"}, "source_article_id": {"col": "ean"},
        "location_id": {"const": "store:X"}, "location_type": {"const": "store"},
        "on_hand": {"col": "qty"}, "unit": {"const": "PCE"}, **extra,
    }  # fmt: skip


def test_mapping_spec_checks_the_model_and_its_fields():
    MappingSpec(table="pos.stock", model="InventoryLevel", fields=inventory_fields())
    with pytest.raises(ValidationError, match="unknown model"):
        MappingSpec(table="t", model="Stock", fields={})
    with pytest.raises(ValidationError, match="no such fields"):
        MappingSpec(table="t", model="InventoryLevel", fields=inventory_fields(colour={"const": 1}))
    fields = inventory_fields()
    del fields["on_hand"]
    with pytest.raises(ValidationError, match=r"unmapped required fields \['on_hand'\]"):
        MappingSpec(table="t", model="InventoryLevel", fields=fields)


def double_quantity(row, values):
    """A hook for the test below: the rare rule YAML cannot say."""
    return {**values, "on_hand": values["on_hand"] * 2}


def test_python_hook_runs_after_the_fields():
    spec = MappingSpec(table="t", model="InventoryLevel", fields=inventory_fields(),
                       hook="tests.unit.core.test_mapping:double_quantity")  # fmt: skip
    values = compile_mapping(spec).values({"ean": "3760000000017", "qty": 4}, NO_LOOKUP)
    assert values["on_hand"] == 8


def test_lookup_tables_are_known_before_running():
    spec = MappingSpec(table="shop.order_line", model="InventoryLevel", fields=inventory_fields(
        gtin={"lookup": "shop.variant", "key": {"id": {"col": "variant_id"}}, "column": "barcode"},
        unit={"concat": ["x", {"lookup": "shop.orders", "key": {"id": {"col": "o"}}, "column": "c"}]},
    ))  # fmt: skip
    assert compile_mapping(spec).lookup_tables == {"shop.variant", "shop.orders"}


def _outcome(run, *args):
    try:
        return ("ok", run(*args))
    except (InvalidEvent, Pending) as error:
        return (type(error).__name__, str(error))


def _recorded_rows() -> dict[str, list[dict]]:
    """Every row image of the recorded events, by table."""
    rows: dict[str, list[dict]] = {}
    for path in FIXTURES.glob("*.json"):
        for record in recorded(path.stem):
            envelope = record.envelope or {}
            source = envelope.get("source") or {}
            table = f"{source.get('schema') or source.get('db')}.{source.get('table')}"
            for image in ("before", "after"):
                if envelope.get(image):
                    rows.setdefault(table, []).append(envelope[image])
    return rows


def test_generated_code_evaluates_every_declared_mapping_as_the_closures_do():
    """Each mapping of ``connectors/`` on every recorded row of its table (and on those rows with
    a column missing, or their lookups missing): the same values or the same error."""
    rows = _recorded_rows()

    def found(table, key):
        candidates = rows.get(table, [])
        return next((r for r in candidates if all(r.get(k) == v for k, v in key.items())), None)

    def closures(mapping, row, lookup):
        return {name: field.evaluate(row, lookup) for name, field in mapping.fields.items()}

    checked = 0
    for definition in load_definitions().values():
        for spec in definition.mappings:
            mapping = compile_mapping(spec)
            for row in rows.get(spec.table, []):
                trimmed = dict(list(row.items())[1:])  # its first column missing
                for case, lookup in [(row, found), (row, NO_LOOKUP), (trimmed, found)]:
                    expected = _outcome(closures, mapping, case, lookup)
                    assert _outcome(mapping.values, case, lookup) == expected, (spec.table, case)
                    checked += 1
    assert checked > 80
