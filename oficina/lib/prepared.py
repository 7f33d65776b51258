"""Querysets compiled once per database connection, for the few reads every sign-in makes.

Building and compiling a queryset costs the ORM 0.3-0.6 ms of CPU each time, more than the query
itself (a member lookup by cédula: 0.9 ms through the ORM, 0.26 ms as SQL on a cursor), and an
Exists() annotation costs ~2.5 ms more to compile. The SQL of these reads never changes, so it is
compiled once, by the ORM itself, with a placeholder value, and then executed with the real value;
rows become model instances exactly as the ORM makes them (Model.from_db, the backend's own value
converters, annotations as attributes).

Only for single-model querysets; `build` must take every value that can change as an argument (each
used exactly once, checked when compiled), since anything else it captures is frozen in the SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db import connections, models
from django.db.models.sql.compiler import SQLCompiler

M = TypeVar("M", bound=models.Model)


@dataclass(frozen=True)
class _Compiled:
    model: type[models.Model]
    sql: str
    params: tuple[Any, ...]  # the compiled parameters: constants of the query, and placeholders
    order: tuple[int | None, ...]  # parameter i is argument order[i], or the constant params[i] if None
    compiler: SQLCompiler
    converters: dict[int, Any]
    model_slice: slice
    attnames: tuple[str, ...]
    annotations: tuple[tuple[str, int], ...]


def _placeholder(kind: type, index: int) -> Any:
    """A value no real argument has, recognisable in the compiled parameters."""
    if kind is int:
        return -7_346_912_000_000 - index
    if kind is str:
        return f"\x00prepared-argument-{index}\x00"
    raise TypeError(f"prepared arguments are str or int, not {kind!r}")


class PreparedQuery(Generic[M]):
    """`build(*args)` returns the queryset; `fetch(*args)` returns its instances, compiled once per
    connection (each thread has its own connection, so nothing here is shared between threads)."""

    def __init__(self, name: str, build: Callable[..., models.QuerySet[M]], *kinds: type) -> None:
        self.attribute = f"_oficina_prepared_{name}"
        self.build = build
        self.kinds = kinds
        self.arity = len(kinds)

    def _compiled(self, using: str) -> _Compiled:
        connection = connections[using]
        compiled: _Compiled | None = getattr(connection, self.attribute, None)
        if compiled is None:
            compiled = self._compile(using)
            setattr(connection, self.attribute, compiled)
        return compiled

    def _compile(self, using: str) -> _Compiled:
        placeholders = [_placeholder(kind, i) for i, kind in enumerate(self.kinds)]
        queryset = self.build(*placeholders)
        compiler = queryset.query.get_compiler(using=using)
        sql, params = compiler.as_sql()
        # Constants the ORM itself adds (a subquery's LIMIT 1) are kept as compiled.
        order = [placeholders.index(p) if p in placeholders else None for p in params]
        if sorted(i for i in order if i is not None) != list(range(self.arity)):
            raise ValueError(f"{self.attribute}: every argument must appear once in the query")
        klass_info = compiler.klass_info
        if klass_info is None or klass_info.get("related_klass_infos"):
            raise ValueError(f"{self.attribute}: only single-model querysets can be prepared")
        fields = klass_info["select_fields"]
        model_slice = slice(fields[0], fields[-1] + 1)
        return _Compiled(
            model=queryset.model,
            sql=sql,
            params=tuple(params),
            order=tuple(order),
            compiler=compiler,
            converters=compiler.get_converters([column for column, _sql, _alias in compiler.select]),
            model_slice=model_slice,
            attnames=tuple(column.target.attname for column, _sql, _alias in compiler.select[model_slice]),
            annotations=tuple(compiler.annotation_col_map.items()),
        )

    def fetch(self, *args: Any, using: str = "default") -> list[M]:
        if len(args) != self.arity:
            raise TypeError(f"{self.attribute} takes {self.arity} arguments, not {len(args)}")
        compiled = self._compiled(using)
        with connections[using].cursor() as cursor:
            values = [
                p if i is None else args[i] for p, i in zip(compiled.params, compiled.order, strict=True)
            ]
            cursor.execute(compiled.sql, values)
            rows: Any = cursor.fetchall()
        if compiled.converters:
            rows = compiled.compiler.apply_converters(rows, compiled.converters)
        instances: list[M] = []
        for row in rows:
            instance: Any = compiled.model.from_db(using, compiled.attnames, row[compiled.model_slice])
            for name, position in compiled.annotations:
                setattr(instance, name, row[position])
            instances.append(instance)
        return instances

    def first(self, *args: Any, using: str = "default") -> M | None:
        found = self.fetch(*args, using=using)
        return found[0] if found else None
