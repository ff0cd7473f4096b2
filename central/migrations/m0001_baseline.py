"""Baseline: central's schema as of 2026-12-03, from frozen SQL (``sql/0001_baseline.<engine>.sql``).

On an empty database it runs that SQL. On a database made before migrations existed (``ctx.legacy``) it brings
the schema of any commit since the office workflow landed (2026-11-26) up to the baseline: the tables and
indexes that are missing are created, the columns added since then are added (existing rows get the value the
models gave new rows), and ``check_in.gate_id`` becomes nullable. It then checks every table has exactly the
baseline's columns, and stops with what is missing otherwise.
"""

from __future__ import annotations

import peewee

from central.migrations import MigrationContext

STEM = "0001_baseline"

ADDED_COLUMNS: tuple[tuple[str, str, peewee.Field], ...] = (
    ("check_in", "note", peewee.TextField(null=True)),
    ("check_in", "operator", peewee.CharField(max_length=200, null=True)),
    ("check_in", "command_id", peewee.UUIDField(null=True)),
    ("gate", "mode", peewee.CharField(max_length=16, null=True)),
    ("gate", "fail_mode", peewee.CharField(max_length=8, null=True)),
    ("meeting", "walkin_policy", peewee.CharField(max_length=16, default="approval")),
)
"""Columns added to existing tables between 2026-11-26 and the baseline, frozen as they were defined."""


def up(ctx: MigrationContext) -> None:
    """Create the baseline schema, or bring a pre-migration database to it."""
    statements = ctx.sql_file(STEM)
    if not ctx.legacy:
        for statement in statements:
            ctx.execute(statement)
        return
    tables = [s for s in statements if s.startswith("CREATE TABLE")]
    indexes = [s for s in statements if not s.startswith("CREATE TABLE")]
    for statement in tables:  # IF NOT EXISTS: only the missing ones
        ctx.execute(statement)
    operations = [
        ctx.migrator.add_column(table, column, column_field)
        for table, column, column_field in ADDED_COLUMNS
        if column not in ctx.columns(table)
    ]
    gate_id = next(column for column in ctx.db.get_columns("check_in") if column.name == "gate_id")
    if not gate_id.null:
        operations.append(ctx.migrator.drop_not_null("check_in", "gate_id"))
    for operation in operations:
        operation.run()
    for statement in indexes:
        ctx.execute(statement)
    _check_columns(ctx)


def _check_columns(ctx: MigrationContext) -> None:
    """Raise when a table's columns differ from the baseline's (a database older than the workflow)."""
    reference = peewee.SqliteDatabase(":memory:")
    with reference.connection_context():
        for statement in MigrationContext(reference).sql_file(STEM):
            if statement.startswith("CREATE TABLE"):
                reference.execute_sql(statement)
        expected = {table: {c.name for c in reference.get_columns(table)} for table in reference.get_tables()}
    problems = []
    for table, columns in sorted(expected.items()):
        have = ctx.columns(table)
        if have != columns:
            missing, extra = sorted(columns - have), sorted(have - columns)
            problems.append(f"{table}: missing {missing}, unexpected {extra}")
    if problems:
        raise RuntimeError("this database is older than the office workflow and cannot be upgraded: "
                           + "; ".join(problems))

