"""``SearchFilters`` as a LanceDB (DataFusion SQL) predicate, with every literal escaped.

The predicate must select exactly the products ``SearchFilters.matches`` accepts; the contract tests
check both agree.
"""

from __future__ import annotations

from collections.abc import Sequence

from looksync.index.base import IndexBackendError, SearchFilters, filter_number


def sql_string(value: str) -> str:
    """A SQL string literal: single quotes doubled (DataFusion treats backslashes literally)."""
    if not isinstance(value, str):
        raise IndexBackendError(f"filter value {value!r} must be a string")
    return "'" + value.replace("'", "''") + "'"


def sql_number(value: float, name: str) -> str:
    return repr(filter_number(value, name))


def sql_in(column: str, values: Sequence[str], negate: bool = False) -> str:
    listed = ", ".join(sql_string(v) for v in values)
    return f"{column} {'NOT IN' if negate else 'IN'} ({listed})"


def check_filters(filters: SearchFilters | None) -> None:
    """The checks ``filter_sql`` makes on every value (strings are strings, prices finite numbers),
    without building the SQL: for searches that filter in memory."""
    if filters is None:
        return
    for values in (
        filters.layers, filters.categories, filters.genders, filters.brands_include, filters.brands_exclude,
        filters.sizes, filters.exclude_ids,
    ):  # fmt: skip
        for value in values or ():
            if not isinstance(value, str):
                raise IndexBackendError(f"filter value {value!r} must be a string")
    if filters.market and not isinstance(filters.market, str):
        raise IndexBackendError(f"filter value {filters.market!r} must be a string")
    if filters.price_min is not None:
        filter_number(filters.price_min, "price_min")
    if filters.price_max is not None:
        filter_number(filters.price_max, "price_max")


def filter_sql(filters: SearchFilters | None) -> str | None:
    """The WHERE clause for ``filters`` (None when nothing is constrained). Empty lists constrain nothing,
    as in ``SearchFilters.matches``."""
    if filters is None:
        return None
    clauses: list[str] = []
    for column, values in (
        ("layer", filters.layers),
        ("category", filters.categories),
        ("gender", filters.genders),
        ("brand", filters.brands_include),
    ):
        if values:
            clauses.append(sql_in(column, values))
    if filters.market:
        clauses.append(f"market = {sql_string(filters.market)}")
    if filters.brands_exclude:
        clauses.append(sql_in("brand", filters.brands_exclude, negate=True))
    if filters.price_min is not None:
        clauses.append(f"price >= {sql_number(filters.price_min, 'price_min')}")
    if filters.price_max is not None:
        clauses.append(f"price <= {sql_number(filters.price_max, 'price_max')}")
    if filters.sizes:
        sizes = ", ".join(sql_string(s) for s in filters.sizes)
        clauses.append(f"array_has_any(sizes, [{sizes}])")
    if filters.in_stock is not None:
        clauses.append(f"in_stock = {'true' if filters.in_stock else 'false'}")
    if filters.exclude_ids:
        clauses.append(sql_in("product_id", filters.exclude_ids, negate=True))
    return " AND ".join(f"({c})" for c in clauses) if clauses else None
