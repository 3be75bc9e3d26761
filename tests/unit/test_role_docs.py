"""Each role's README and argument spec cover every variable of its defaults, with the same defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"
DOCUMENTED = (
    "capped_volume",
    "docker_engine",
    "images",
    "kafka",
    "postgres",
    "postgres_exporter",
    "prometheus",
    "spark",
    "spark_cluster",
    "producer",
    "toxiproxy",
)


def _spec_options(role: str) -> dict[str, dict]:
    specs = yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    options: dict[str, dict] = {}
    for entry in specs.values():
        options.update(entry.get("options") or {})
    return options


@pytest.mark.parametrize("role", DOCUMENTED)
def test_every_default_is_in_the_argument_spec_and_the_readme(role: str) -> None:
    defaults = yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text()) or {}
    options = _spec_options(role)
    readme = (ROLES / role / "README.md").read_text()
    assert sorted(set(defaults) - set(options)) == []
    assert [name for name in options if f"{name}:" not in readme] == []


@pytest.mark.parametrize("role", DOCUMENTED)
def test_spec_defaults_match_the_role_defaults(role: str) -> None:
    defaults = yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text()) or {}
    for name, option in _spec_options(role).items():
        if "default" in option and "{{" not in str(defaults.get(name, "")):
            assert defaults[name] == option["default"], name


@pytest.mark.parametrize("role", DOCUMENTED)
def test_descriptions_say_what_a_value_does(role: str) -> None:
    # More than a restatement of the name ("Container name."): at least five words.
    options = _spec_options(role)
    assert {n: o["description"] for n, o in options.items() if len(str(o["description"]).split()) < 5} == {}
