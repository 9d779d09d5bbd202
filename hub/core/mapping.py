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
    # Every field at once, as straight-line Python (``generate``): what each event runs.
    all_fields: Callable[[Row, Lookup], dict[str, Any]] | None = None

    @property
    def lookup_tables(self) -> set[str]:
        return _lookup_tables(self.spec.fields.values())

    def values(
        self, row: Row, lookup: Lookup, only: tuple[str, ...] | None = None
    ) -> dict[str, Any]:
        """Evaluate every field (or ``only`` these); raises ``InvalidEvent`` or ``Pending``."""
        if only is None and self.all_fields is not None:
            values = self.all_fields(row, lookup)
        else:
            names = only if only is not None else tuple(self.fields)
            values = {
                name: self.fields[name].evaluate(row, lookup)
                for name in names
                if name in self.fields
            }
        if self.hook is not None and only is None:
            values = self.hook(row, values)
        return values


class _Unset:
    """A lookup not made yet (``generate``)."""


class _Writer:
    """Writes the fields of one mapping as the body of one function ``(row, lookup) → values``:
    each expression into a local, the same order of evaluation and the same errors as
    ``compile_expr``, a row looked up once however many fields read it. Values from the definition
    (constants, text, transforms, names) reach the code as names bound in its namespace, never as
    source text."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.namespace: dict[str, Any] = {
            "InvalidEvent": InvalidEvent, "Pending": Pending, "Decimal": Decimal,
            "to_decimal": to_decimal, "UNSET": _Unset,
        }  # fmt: skip
        self.count = 0
        self.lookups: dict[str, str] = {}  # lookup expression (JSON) → its local

    def bind(self, value: Any) -> str:
        name = f"c{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def local(self) -> str:
        self.count += 1
        return f"v{self.count}"

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def expr(self, expr: Expr, depth: int) -> str:
        """Code computing ``expr`` at ``depth``; returns the local holding its value."""
        out = self.base(expr, depth)
        level = depth
        for transform in expr.then:
            step = self.bind(build_transform(transform))
            self.emit(level, f"if {out} is not None:")
            level += 1
            self.emit(level, f"{out} = {step}({out})")
        return out

    def base(self, expr: Expr, depth: int) -> str:
        out = self.local()
        if expr.col is not None:
            column = self.bind(expr.col)
            error = self.bind(f"the row has no column {expr.col!r}")
            self.emit(depth, f"if {column} not in row:")
            self.emit(depth + 1, f"raise InvalidEvent('missing_column', {error})")
            self.emit(depth, f"{out} = row[{column}]")
        elif expr.concat is not None:
            self.emit(depth, f"{out} = None")
            parts, level = [], depth
            for part in expr.concat:
                if isinstance(part, str):
                    parts.append(self.bind(part))
                    continue
                value = self.expr(part, level)
                self.emit(level, f"if {value} is not None:")
                level += 1
                parts.append(f"str({value})")
            self.emit(level, f"{out} = ''.join(({', '.join(parts)},))")
        elif expr.sum is not None or expr.sub is not None:
            terms = [self.expr(term, depth) for term in (expr.sum or expr.sub or [])]
            self.emit(depth, f"{out} = None")
            if terms:
                self.emit(depth, f"if {' and '.join(f'{t} is not None' for t in terms)}:")
                if expr.sum is not None:
                    total = " + ".join(f"to_decimal({t})" for t in terms)
                    self.emit(depth + 1, f"{out} = Decimal(0) + {total}")
                else:
                    first, *rest = terms
                    others = " + ".join(f"to_decimal({t})" for t in rest)
                    self.emit(depth + 1, f"{out} = to_decimal({first}) - (Decimal(0) + {others})")
            else:
                self.emit(depth, f"{out} = Decimal(0)")
        elif expr.coalesce is not None:
            self.emit(depth, f"{out} = None")
            level = depth
            for choice in expr.coalesce:
                value = self.expr(choice, level)
                self.emit(level, f"{out} = {value}")
                self.emit(level, f"if {out} is None:")
                level += 1
            self.emit(level, "pass")
        elif expr.lookup is not None:
            self.lookup(expr, out, depth)
        else:
            self.emit(depth, f"{out} = {self.bind(expr.const)}")
        return out

    def lookup(self, expr: Expr, out: str, depth: int) -> None:
        signature = expr.model_dump_json(include={"lookup", "key"})
        found = self.lookups.get(signature)
        if found is None:
            found = self.lookups[signature] = f"row{len(self.lookups)}"
            self.lines.insert(0, f"    {found} = UNSET")
        table = self.bind(expr.lookup)
        self.emit(depth, f"if {found} is UNSET:")
        keys = {name: self.expr(e, depth + 1) for name, e in (expr.key or {}).items()}
        key = "{" + ", ".join(f"{self.bind(name)}: {value}" for name, value in keys.items()) + "}"
        if keys:
            check = " and ".join(f"{value} is not None" for value in keys.values())
            self.emit(depth + 1, f"if not ({check}):")
            self.emit(depth + 2, f"{found} = None")
            self.emit(depth + 1, "else:")
            inner = depth + 2
        else:
            inner = depth + 1
        self.emit(inner, f"key = {key}")
        self.emit(inner, f"{found} = lookup({table}, key)")
        self.emit(inner, f"if {found} is None:")
        self.emit(inner + 1, f"raise Pending({table}, key)")
        column = self.bind(expr.column or "")
        error = self.bind(f"{expr.lookup} rows have no column {expr.column!r}")
        self.emit(depth, f"{out} = None")
        self.emit(depth, f"if {found} is not None:")
        self.emit(depth + 1, f"if {column} not in {found}:")
        self.emit(depth + 2, f"raise InvalidEvent('missing_column', {error})")
        self.emit(depth + 1, f"{out} = {found}[{column}]")


def generate(fields: Mapping[str, Expr]) -> Callable[[Row, Lookup], dict[str, Any]]:
    """One function evaluating every field of ``fields`` as ``compile_expr`` would, in one pass of
    straight-line code (no call per expression)."""
    writer = _Writer()
    results = {name: writer.expr(expr, 1) for name, expr in fields.items()}
    body = ", ".join(f"{writer.bind(name)}: {value}" for name, value in results.items())
    source = "\n".join(["def values(row, lookup):", *writer.lines, f"    return {{{body}}}"])
    namespace = dict(writer.namespace)
    exec(compile(source, "<mapping>", "exec"), namespace)  # noqa: S102 - our own code, no input text
    function: Callable[[Row, Lookup], dict[str, Any]] = namespace["values"]
    return function


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
    fields = {name: compile_expr(e) for name, e in spec.fields.items()}
    return CompiledMapping(spec, fields, hook, generate(spec.fields))
