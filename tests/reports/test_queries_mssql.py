"""Every report statement compiles for MS SQL (and SQLite, PostgreSQL), with no dialect-only function."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects import mssql, postgresql, sqlite

from ctid.reports.queries import BUILDERS


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_compiles_everywhere(name):
    for dialect in (mssql.dialect(), postgresql.dialect(), sqlite.dialect()):
        text = str(BUILDERS[name]().compile(dialect=dialect)).lower()
        assert "percentile" not in text and "date(" not in text and "extract(" not in text
    assert "limit" not in str(BUILDERS[name]().compile(dialect=mssql.dialect())).lower()
