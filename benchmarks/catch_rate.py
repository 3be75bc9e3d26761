"""The `profiles` section of `make bench`: how often the CI scenario, by chaos alone (no failpoint), makes
each known-unsafe profile fail validation, and how often the safe profile passes it clean.

For each profile: provision it (`site.yml -e profile=P`), run the CI scenario N times as `tools experiment
run` does (tools/experiment, as a library, with the producer container the chaos role uses), count the
runs whose validation reports anomalies (missing, extra or duplicate ids); then the safe profile again.
Goal: N of N caught for each unsafe profile, 0 anomalies in N of N safe runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tools.experiment.experiment import ExperimentSpec, run_experiment  # noqa: E402
from tools.experiment.producer import ContainerSettings  # noqa: E402
from tools.run.clock import stamp  # noqa: E402
from tools.run.layout import VALIDATION_FILE  # noqa: E402

BOOTSTRAP = "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094"
PROFILES = ("unsafe-sink", "unsafe-offsets", "unsafe-kafka", "safe")
ANSIBLE = Path(sys.executable).parent / "ansible-playbook"
# The producer container exactly as the chaos role starts it (roles/producer/tasks/settings.yml).
PRODUCER_PLAY = """
- name: Describe the producer container for the benchmark
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Describe the producer container
      ansible.builtin.include_role:
        name: producer
        tasks_from: settings.yml
      vars:
        producer_container_name: "{{ chaosbed_container_prefix }}{{ groups['producer'][0] }}"
    - name: Show it
      ansible.builtin.debug:
        var: producer_container
"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def profile_vars(profile: str) -> dict[str, Any]:
    data = yaml.safe_load((REPO / "playbooks" / "profiles" / f"{profile}.yml").read_text())
    return data if isinstance(data, dict) else {}


def _playbook(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(ANSIBLE), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", **(env or {})},
    )
    if done.returncode != 0:
        raise RuntimeError(f"ansible-playbook {' '.join(args)} failed:\n{done.stdout[-3000:]}")
    return done.stdout


def provision(profile: str) -> None:
    log(f"profiles: provisioning {profile}")
    _playbook("playbooks/site.yml", "-e", f"profile={profile}")


def producer_settings() -> ContainerSettings:
    # Beside the real playbooks, so that playbooks/group_vars apply; removed at once.
    with tempfile.NamedTemporaryFile("w", dir=REPO / "playbooks", prefix=".bench-", suffix=".yml") as play:
        play.write(PRODUCER_PLAY)
        play.flush()
        out = _playbook(play.name, env={"ANSIBLE_STDOUT_CALLBACK": "json"})
    tasks = json.loads(out)["plays"][0]["tasks"]
    return ContainerSettings(**tasks[-1]["hosts"]["localhost"]["producer_container"])


def one_run(profile: str, index: int, scenario: str, producer: ContainerSettings, dsn: str) -> dict[str, Any]:
    pv = profile_vars(profile)
    spec = ExperimentSpec(
        scenario=scenario,
        bootstrap_servers=BOOTSTRAP,
        postgres_dsn=dsn,
        profile=profile,
        sink_table=pv.get("chaos_sink_table", "events"),
        topic=pv.get("chaosbed_topic", "events"),
        kafka_config=list(pv.get("chaos_producer_kafka_config", [])),
        producer=producer,
        runs_root=REPO / "runs",
        run_id=f"{stamp()}-bench-{profile}-{index}",
        render_report=False,
        # A catch is a verdict, not a recovery time: CI's own short baseline and cooldown (tests/pipeline).
        baseline_s=20,
        cooldown_s=15,
        spark_deploy="local",  # site.yml -e profile=P provisions the default deploy (ci.yml gates on it)
    )
    result = run_experiment(spec)
    out: dict[str, Any] = {"run_id": result.run_dir.name, "exit": result.exit_code}
    path = result.run_dir / VALIDATION_FILE
    if result.validate_exit in (0, 1) and path.exists():
        v = json.loads(path.read_text())
        out.update(missing=v["missing_count"], extra=v["extra_count"], duplicate=v["duplicate_count"])
        out["anomalies"] = out["missing"] + out["extra"] + out["duplicate"]
    return out


def catch_rates(
    runs: int, dsn: str, scenario: str = "ci", profiles: tuple[str, ...] = PROFILES
) -> dict[str, Any]:
    """Each profile's runs; `caught` counts runs with anomalies (for `safe`: `clean` counts runs without)."""
    producer = producer_settings()
    result: dict[str, Any] = {"scenario": scenario, "runs": runs, "profiles": {}}
    try:
        for profile in profiles:
            provision(profile)
            rows = []
            for index in range(1, runs + 1):
                log(f"profiles: {profile} run {index}/{runs} of scenario {scenario}")
                rows.append(one_run(profile, index, scenario, producer, dsn))
                log(f"  {rows[-1]}")
            measured = [r for r in rows if "anomalies" in r]
            result["profiles"][profile] = {
                "runs": rows,
                "measured": len(measured),
                "caught": sum(r["anomalies"] > 0 for r in measured),
                "clean": sum(r["anomalies"] == 0 for r in measured),
            }
    finally:
        if profiles[-1:] != ("safe",):
            provision("safe")  # leave the pipeline as every other test and run expects it
    return result


def table_rows(section: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    n = section["runs"]
    for profile, p in section["profiles"].items():
        if profile == "safe":
            rows.append((f"safe profile, {section['scenario']} scenario: runs with 0 anomalies",
                         f"{p['clean']}/{p['measured']}", f"{n} of {n}",
                         "yes" if p["clean"] == n else "**no**"))  # fmt: skip
        else:
            rows.append((f"{profile} caught by chaos alone ({section['scenario']} scenario, no failpoint)",
                         f"{p['caught']}/{p['measured']}", f"{n} of {n}",
                         "yes" if p["caught"] == n else "**no**"))  # fmt: skip
    return rows
