"""Molecule's scenario file cannot read the playbooks' variables: its image tags must follow versions.yml."""

from __future__ import annotations

from pathlib import Path

import yaml
from fixtures.images import vm_image

ROOT = Path(__file__).resolve().parents[2]


def test_systemd_scenario_uses_the_image_make_setup_builds() -> None:
    expected = vm_image()
    scenario = yaml.safe_load((ROOT / "molecule/systemd/molecule.yml").read_text())
    images = {platform["image"] for platform in scenario["platforms"]}
    assert images == {expected}, f"molecule/systemd/molecule.yml: {images}, versions.yml builds {expected}"
