"""The chaos tools' nettools image is the one the images role builds (it is never pulled)."""

from __future__ import annotations

from pathlib import Path

import yaml

from tools.chaos.config import ChaosConfig

VERSIONS = Path(__file__).resolve().parents[2] / "playbooks" / "group_vars" / "all" / "versions.yml"


def test_default_nettools_image_has_the_built_revision() -> None:
    # A fresh machine builds only the current revision: a stale tag fails every network fault.
    revision = yaml.safe_load(VERSIONS.read_text())["chaosbed_image_revision"]
    assert ChaosConfig().nettools_image == f"chaosbed/nettools:{revision}"
