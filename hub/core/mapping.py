"""Declarative mappings: a source table's row → a canonical record, field by field.

A mapping (in ``connectors/<system>.yaml``) names its table, its model and one expression per
field. Expressions:

    {col: NAME}                               the row's column
    {const: VALUE}                            a constant
    {concat: [PART, ...]}                     text; a PART is a literal string or an expression
    {sum: [EXPR, ...]}                        exact decimal sum
    {sub: [EXPR, EXPR, ...]}                  exact decimal difference: the first minus the others
    {coalesce: [EXPR, ...]}                   the first value that is not None
    {lookup: TABLE, key: {COL: EXPR}, column: NAME}
                                              a column of another captured table's row
and any expression may add ``then: [TRANSFORM, ...]`` (see ``hub.core.transforms``). A ``None``
anywhere in a concat, sum or sub makes the result ``None``; transforms pass ``None`` through.

Compiling is strict (unknown keys, transforms or models raise ``ValueError`` when the definition is
loaded); evaluating raises ``InvalidEvent`` for bad values and ``Pending`` for a lookup whose row
has not arrived yet.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.core.transforms import Transform, build_transform, to_decimal
from hub.errors import InvalidEvent
from hub.models import MODELS

Row = Mapping[str, Any]
RefKey = tuple[str, str]  # (table, canonical key JSON)
Lookup = Callable[[str, dict[str, Any]], Row | None]  # (table, key columns) → row or None


class Pending(Exception):
    """A lookup found no row (yet): the record waits for ``table``/``key`` to arrive."""

    def __init__(self, table: str, key: dict[str, Any]) -> None:
        super().__init__(f"waiting for {table} {key}")
        self.table = table
        self.key = key


SOURCES = ("col", "const", "concat", "sum", "sub", "coalesce", "lookup")


class Expr(BaseModel):
    """One field expression, as written in a definition."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    col: str | None = None
    const: Any = None
    concat: list[str | Expr] | None = None
    sum: list[Expr] | None = None
    sub: list[Expr] | None = Field(default=None, min_length=2)
    coalesce: list[Expr] | None = Field(default=None, min_length=1)
    lookup: str | None = None
    key: dict[str, Expr] | None = None
    column: str | None = None
    then: list[Any] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _one_source(cls, data: Any) -> Any:
        if isinstance(data, dict):
            sources = [k for k in SOURCES if k in data]
            if len(sources) != 1:
                raise ValueError(f"an expression has exactly one of {'/'.join(SOURCES)}: {data}")
            if "lookup" in data and not ("key" in data and "column" in data):
                raise ValueError(f"a lookup needs key and column: {data}")
        return data


class MappingSpec(BaseModel):
    """``table`` rows → ``model`` records."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    table: str
    model: str
    fields: dict[str, Expr]
    hook: str | None = Field(
        default=None,
        description="module:function(row, values) → values, for a rule YAML cannot say",
    )

    @model_validator(mode="after")
    def _known_model_and_fields(self) -> MappingSpec:
        model = MODELS.get(self.model)
        if model is None:
            raise ValueError(f"unknown model {self.model!r}; known: {sorted(MODELS)}")
        source_fields = {n for n in model.model_fields if n.startswith("source_")} | {
            "emitted_at", "schema_version"
        }  # fmt: skip
        unknown = set(self.fields) - set(model.model_fields)
        if unknown:
            raise ValueError(f"{self.table} → {self.model}: no such fields {sorted(unknown)}")
        required = (
            {name for name, info in model.model_fields.items() if info.is_required()}
            - source_fields
            - ({"source_id"} if "source_id" in self.fields else set())
        )
        missing = required - set(self.fields)
        if missing:
            raise ValueError(
                f"{self.table} → {self.model}: unmapped required fields {sorted(missing)}"
            )
        return self


@dataclass(frozen=True)
class Compiled:
    """An expression ready to evaluate."""

    evaluate: Callable[[Row, Lookup], Any]


def compile_expr(expr: Expr) -> Compiled:
    steps: list[Transform] = [build_transform(t) for t in expr.then]
    base = _compile_base(expr)

    def evaluate(row: Row, lookup: Lookup) -> Any:
        value = base(row, lookup)
        for step in steps:
            if value is None:
                return None
            value = step(value)
        return value

    return Compiled(evaluate)


def _compile_base(expr: Expr) -> Callable[[Row, Lookup], Any]:
    if expr.col is not None:
        column = expr.col

        def col(row: Row, lookup: Lookup) -> Any:
            if column not in row:
                raise InvalidEvent("missing_column", f"the row has no column {column!r}")
            return row[column]

        return col
    if expr.concat is not None:
        parts = [p if isinstance(p, str) else compile_expr(p) for p in expr.concat]

        def concat(row: Row, lookup: Lookup) -> Any:
            out = []
            for part in parts:
                value = part if isinstance(part, str) else part.evaluate(row, lookup)
                if value is None:
                    return None
                out.append(str(value))
            return "".join(out)

        return concat
    if expr.sum is not None:
        terms = [compile_expr(p) for p in expr.sum]

        def total(row: Row, lookup: Lookup) -> Any:
            values = [t.evaluate(row, lookup) for t in terms]
            if any(v is None for v in values):
                return None
            return sum((to_decimal(v) for v in values), Decimal(0))

        return total
    if expr.sub is not None:
        first, *rest = [compile_expr(p) for p in expr.sub]

        def difference(row: Row, lookup: Lookup) -> Any:
            start = first.evaluate(row, lookup)
            values = [t.evaluate(row, lookup) for t in rest]
            if start is None or any(v is None for v in values):
                return None
            return to_decimal(start) - sum((to_decimal(v) for v in values), Decimal(0))

        return difference
    if expr.coalesce is not None:
        choices = [compile_expr(p) for p in expr.coalesce]

        def first_set(row: Row, lookup: Lookup) -> Any:
            for choice in choices:
                value = choice.evaluate(row, lookup)
                if value is not None:
                    return value
            return None

        return first_set
    if expr.lookup is not None:
        table, column = expr.lookup, expr.column or ""
        keys = {name: compile_expr(e) for name, e in (expr.key or {}).items()}

        def look(row: Row, lookup: Lookup) -> Any:
            key = {name: e.evaluate(row, lookup) for name, e in keys.items()}
            if any(v is None for v in key.values()):
                return None
            found = lookup(table, key)
            if found is None:
                raise Pending(table, key)
            if column not in found:
                raise InvalidEvent("missing_column", f"{table} rows have no column {column!r}")
            return found[column]

        return look
    constant = expr.const
    return lambda row, lookup: constant


@dataclass(frozen=True)
class CompiledMapping:
    spec: MappingSpec
    fields: dict[str, Compiled]
    hook: Callable[[Row, dict[str, Any]], dict[str, Any]] | None

    @property
    def lookup_tables(self) -> set[str]:
        return _lookup_tables(self.spec.fields.values())

    def values(
        self, row: Row, lookup: Lookup, only: tuple[str, ...] | None = None
    ) -> dict[str, Any]:
        """Evaluate every field (or ``only`` these); raises ``InvalidEvent`` or ``Pending``."""
        names = only if only is not None else tuple(self.fields)
        values = {
            name: self.fields[name].evaluate(row, lookup) for name in names if name in self.fields
        }
        if self.hook is not None and only is None:
            values = self.hook(row, values)
        return values


def _lookup_tables(exprs: Any) -> set[str]:
    tables: set[str] = set()
    for expr in exprs:
        if expr.lookup:
            tables.add(expr.lookup)
            tables |= _lookup_tables((expr.key or {}).values())
        tables |= _lookup_tables([p for p in (expr.concat or []) if isinstance(p, Expr)])
        tables |= _lookup_tables([*(expr.sum or []), *(expr.sub or []), *(expr.coalesce or [])])
    return tables


def compile_mapping(spec: MappingSpec) -> CompiledMapping:
    hook = None
    if spec.hook:
        module, _, name = spec.hook.partition(":")
        hook = getattr(importlib.import_module(module), name)
    return CompiledMapping(spec, {name: compile_expr(e) for name, e in spec.fields.items()}, hook)
