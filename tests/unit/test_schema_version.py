"""The postgres role applies files/schema.sql to an existing database only when postgres_schema_version
is newer than the one it recorded: an edit without a bump leaves running pipelines without it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

ROLE = Path(__file__).resolve().parents[2] / "roles" / "postgres"
# The schema each version applied: add a line with every bump.
SCHEMA_SHA256 = {
    6: "0cc4786cd7235411c0979bb851253f5a79cc22db94ad6157f54ef7b232a43692",
}


def test_every_schema_edit_bumps_the_version() -> None:
    version = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())["postgres_schema_version"]
    digest = hashlib.sha256((ROLE / "files" / "schema.sql").read_bytes()).hexdigest()
    assert SCHEMA_SHA256.get(version) == digest, (
        f"roles/postgres/files/schema.sql (sha256 {digest}) is not the schema of version {version}: bump "
        "postgres_schema_version (defaults, argument spec, README) and record the new digest here"
    )
