"""Inserting a model row without the ORM's query compiler, for the per-report write path."""

from __future__ import annotations

import functools

from django.db import connection, models


@functools.cache
def _insert_sql(model: type[models.Model]) -> tuple[str, tuple[models.Field, ...]]:
    fields = tuple(f for f in model._meta.concrete_fields if not f.generated)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    return (
        f"INSERT INTO {connection.ops.quote_name(model._meta.db_table)} ({columns}) VALUES ({placeholders})",
        fields,
    )


def insert(instance: models.Model) -> None:
    """``instance.save(force_insert=True)`` for a model whose primary key is set in Python (a
    UUID default), in one ``INSERT`` built once per model.

    Building the ``INSERT`` through the ORM costs several times its execution on the
    report-ingestion path. Same values as ``save()``: each field's ``pre_save`` (defaults,
    ``auto_now_add``) and ``get_db_prep_save``. No signals are sent: use it only for models
    without ``pre_save``/``post_save`` receivers.
    """
    sql, fields = _insert_sql(type(instance))
    values = [f.get_db_prep_save(f.pre_save(instance, True), connection) for f in fields]
    with connection.cursor() as cur:
        cur.execute(sql, values)
    instance._state.adding = False
    instance._state.db = connection.alias
