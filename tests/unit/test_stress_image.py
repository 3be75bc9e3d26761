"""The stress kind's stress-ng image is the one the images role builds (it is never pulled)."""

from __future__ import annotations

from pathlib import Path

import yaml
from fixtures.images import stress_image

from tools.chaos.config import ChaosConfig

ROLE_DEFAULTS = Path(__file__).resolve().parents[2] / "roles/images/defaults/main.yml"


def test_default_stress_image_has_the_built_revision() -> None:
    # A fresh machine builds only the current revision: a stale tag fails every stress fault.
    assert ChaosConfig().stress_image == stress_image()


def test_the_images_role_builds_it_from_debians_stress_ng() -> None:
    rootfs = yaml.safe_load(ROLE_DEFAULTS.read_text())["images_rootfs"]
    [entry] = [r for r in rootfs if r["name"] == stress_image().split(":")[0]]
    assert entry["tag"] == "{{ images_revision }}" and "stress-ng" in entry["packages"]
