"""The chaos tools' nettools image is the one the images role builds (it is never pulled)."""

from __future__ import annotations

from fixtures.images import nettools_image

from tools.chaos.config import ChaosConfig


def test_default_nettools_image_has_the_built_revision() -> None:
    # A fresh machine builds only the current revision: a stale tag fails every network fault.
    assert ChaosConfig().nettools_image == nettools_image()
