"""Load a scenario file (a list of faults, or `scenario: random`), validate it, and build its schedule."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from tools.chaos import deployment
from tools.chaos.config import ChaosConfig
from tools.chaos.durations import DurationError, parse_duration
from tools.chaos.faults import KINDS, FaultError, FaultSpec, parse_fault
from tools.chaos.kinds import REGISTRY
from tools.chaos.random_plan import RANDOM_KINDS, RandomSpec, generate
from tools.chaos.schedule import Schedule, build_schedule, check_conflicts, check_quorum
from tools.errors import EXIT_BAD_INPUT, ToolError

STATIC_KEYS = frozenset(
    {"name", "description", "faults", "duration", "allow_quorum_loss", "replication_factor"}
    | {"min_insync_replicas", "recovery_gap", "seed"}
)
RANDOM_KEYS = frozenset(
    {"scenario", "name", "description", "seed", "duration", "kinds", "targets", "interval", "fault_duration"}
    | {"allow_quorum_loss", "replication_factor", "min_insync_replicas", "recovery_gap"}
)
REPO_ROOT = Path(__file__).resolve().parents[2]


class ScenarioError(ToolError):
    def __init__(self, path: Path | str, problem: str, fault: int | None = None) -> None:
        where = f"{path}: fault #{fault}: " if fault is not None else f"{path}: "
        super().__init__(where + problem, EXIT_BAD_INPUT)


@dataclass(frozen=True)
class Scenario:
    path: Path
    schedule: Schedule
    allow_quorum_loss: bool
    max_brokers_down: int

    def faults(self) -> list[FaultSpec]:
        """Every fault of the file, once each, in schedule order."""
        return list({a.fault.index: a.fault for a in self.schedule.actions}.values())

    def applicable(self) -> list[FaultSpec]:
        """The faults this deployment runs: not those marked not applicable, nor, while the deployment is
        not known, those that need one (their targets may not exist)."""
        skipped = {a.fault.index for a in self.schedule.actions if a.not_applicable}
        known = self.schedule.spark_deploy is not None
        return [f for f in self.faults() if f.index not in skipped and (known or f.spark_deploy is None)]

    def on(self, spark_deploy: str | None) -> Scenario:
        """The same scenario on this Spark deployment: each fault that needs another is not applicable."""
        return replace(self, schedule=deployment.gate(self.schedule, spark_deploy))


def resolve_path(name_or_path: str) -> Path:
    """A path as given, or a name looked up as scenarios/<name>.yml (cwd first, then the repo)."""
    given = Path(name_or_path)
    if given.exists() or given.suffix in (".yml", ".yaml") or "/" in name_or_path:
        return given
    for base in (Path.cwd(), REPO_ROOT):
        candidate = base / "scenarios" / f"{name_or_path}.yml"
        if candidate.exists():
            return candidate
    raise ToolError(f"scenario {name_or_path!r} not found (no scenarios/{name_or_path}.yml)", EXIT_BAD_INPUT)


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(path, f"cannot read file: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScenarioError(path, f"invalid YAML{line}: {problem}") from None


def _duration(
    path: Path, doc: dict[str, Any], key: str, default: str | None, positive: bool = True
) -> int | None:
    if key not in doc and default is None:
        return None
    value = doc.get(key, default)
    try:
        ms = parse_duration(value)
    except DurationError as exc:
        raise ScenarioError(path, f"'{key}': {exc}") from None
    if ms < 0 or (positive and ms == 0):
        raise ScenarioError(path, f"'{key}' must be a positive duration, got {value!r}")
    return ms


def _int(path: Path, doc: dict[str, Any], key: str, default: int, lo: int) -> int:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ScenarioError(path, f"'{key}' must be an integer >= {lo}, got {value!r}")
    return value


def _bool(path: Path, doc: dict[str, Any], key: str) -> bool:
    value = doc.get(key, False)
    if not isinstance(value, bool):
        raise ScenarioError(path, f"'{key}' must be true or false, got {value!r}")
    return value


def _range(path: Path, doc: dict[str, Any], key: str, default: tuple[str, str]) -> tuple[int, int]:
    value = doc.get(key, {"min": default[0], "max": default[1]})
    if not isinstance(value, dict) or set(value) - {"min", "max"}:
        raise ScenarioError(path, f"'{key}' must be a mapping with min and max durations")
    bounds = []
    for bound, fallback in zip(("min", "max"), default, strict=True):
        try:
            ms = parse_duration(value.get(bound, fallback))
        except DurationError as exc:
            raise ScenarioError(path, f"'{key}.{bound}': {exc}") from None
        if ms < 1000:
            raise ScenarioError(path, f"'{key}.{bound}' must be at least 1s, got {value.get(bound)!r}")
        bounds.append(ms)
    if bounds[0] > bounds[1]:
        raise ScenarioError(path, f"'{key}': min is larger than max")
    return bounds[0], bounds[1]


def _max_down(path: Path, doc: dict[str, Any]) -> int:
    rf = _int(path, doc, "replication_factor", 3, lo=1)
    min_isr = _int(path, doc, "min_insync_replicas", 2, lo=1)
    if min_isr > rf:
        raise ScenarioError(path, "'min_insync_replicas' is larger than 'replication_factor'")
    return rf - min_isr


def _random(
    path: Path, doc: dict[str, Any], seed: int | None, duration_ms: int | None, cfg: ChaosConfig
) -> Scenario:
    unknown = sorted(str(k) for k in doc if k not in RANDOM_KEYS)
    if unknown:
        raise ScenarioError(path, f"unknown key {unknown[0]!r} for a random scenario")
    if seed is None:
        seed = _int(path, doc, "seed", -1, lo=0) if "seed" in doc else None
        if seed is None:
            raise ScenarioError(path, "'seed' is required for a random scenario (or pass --seed)")
    if duration_ms is None:
        duration_ms = _duration(path, doc, "duration", None)
        if duration_ms is None:
            raise ScenarioError(path, "'duration' is required for a random scenario (or pass --duration)")
    kinds = doc.get("kinds", ["kill", "stop", "pause", "iptables loss", "iptables partition"])
    if not isinstance(kinds, list) or not kinds:
        raise ScenarioError(path, "'kinds' must be a non-empty list of fault kinds")
    for kind in kinds:
        if kind not in RANDOM_KINDS:
            never = REGISTRY[kind].never_random if kind in REGISTRY else ""
            why = never or f"known: {', '.join(RANDOM_KINDS)}"
            raise ScenarioError(path, f"unknown or unsupported kind {kind!r} in 'kinds' ({why})")
    targets = doc.get("targets")
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) and t for t in targets):
        raise ScenarioError(path, "missing target: 'targets' must list the services to hit")
    if len(set(targets)) != len(targets):
        raise ScenarioError(path, "'targets' names a service twice")
    spec = RandomSpec(
        seed=seed,
        duration_ms=duration_ms,
        kinds=tuple(kinds),
        targets=tuple(targets),
        interval_ms=_range(path, doc, "interval", ("20s", "60s")),
        fault_ms=_range(path, doc, "fault_duration", ("10s", "30s")),
        allow_quorum_loss=_bool(path, doc, "allow_quorum_loss"),
        max_brokers_down=_max_down(path, doc),
        recovery_gap_ms=_duration(path, doc, "recovery_gap", "20s", positive=False) or 0,
    )
    try:
        faults = generate(spec, cfg.is_broker)
    except FaultError as exc:  # a bad range (e.g. a probability) surfaces here
        raise ScenarioError(path, f"cannot build the random plan: {exc}") from None
    name = str(doc.get("name", path.stem))
    schedule = build_schedule(name, faults, duration_ms, seed)
    return Scenario(path, schedule, spec.allow_quorum_loss, spec.max_brokers_down)


def load_scenario(
    path: Path,
    cfg: ChaosConfig,
    seed: int | None = None,
    duration_ms: int | None = None,
    spark_deploy: str | None = None,
) -> Scenario:
    """Parse and check a scenario file; raises ScenarioError (exit 2) naming file, fault and problem.

    With `spark_deploy` (local, standalone) each fault that needs the other deployment is marked not
    applicable; every check of the file counts it all the same, so a file is valid on both deployments.
    """
    return _load(path, cfg, seed, duration_ms).on(spark_deploy)


def _load(path: Path, cfg: ChaosConfig, seed: int | None, duration_ms: int | None) -> Scenario:
    doc = _read(path)
    if isinstance(doc, dict) and doc.get("scenario") == "random":
        return _random(path, doc, seed, duration_ms, cfg)
    if isinstance(doc, dict) and "scenario" in doc:
        raise ScenarioError(path, f"unknown scenario type {doc['scenario']!r} (only 'random' is known)")
    if isinstance(doc, list):
        doc = {"faults": doc}
    if not isinstance(doc, dict) or not isinstance(doc.get("faults"), list):
        raise ScenarioError(path, "expected a list of faults, a mapping with 'faults', or 'scenario: random'")
    unknown = sorted(str(k) for k in doc if k not in STATIC_KEYS)
    if unknown:
        raise ScenarioError(path, f"unknown key {unknown[0]!r} (allowed: {', '.join(sorted(STATIC_KEYS))})")
    if not doc["faults"]:
        raise ScenarioError(path, "the scenario has no faults")
    faults: list[FaultSpec] = []
    for index, raw in enumerate(doc["faults"], start=1):
        try:
            faults.append(parse_fault(index, raw))
        except FaultError as exc:
            raise ScenarioError(path, str(exc), fault=index) from None
    names = {f.name for f in faults}
    for fault in faults:
        if fault.concurrent_with is not None and fault.concurrent_with not in names - {fault.name}:
            raise ScenarioError(
                path,
                f"'concurrent_with': no other fault is named {fault.concurrent_with!r}",
                fault=fault.index,
            )
    phase_ms = duration_ms if duration_ms is not None else _duration(path, doc, "duration", None)
    if seed is None and "seed" in doc:
        seed = _int(path, doc, "seed", 0, lo=0)  # draws the triggers' delays
    schedule = build_schedule(str(doc.get("name", path.stem)), faults, phase_ms, seed)
    for fault in faults:
        if fault.at_ms + fault.wait_ms + (fault.window_ms or 0) > schedule.phase_ms:
            raise ScenarioError(path, "ends after the scenario's 'duration'", fault=fault.index)
    allow = _bool(path, doc, "allow_quorum_loss")
    max_down = _max_down(path, doc)
    gap_ms = _duration(path, doc, "recovery_gap", "0s", positive=False) or 0
    for problem in (
        check_conflicts(faults, schedule.phase_ms),
        None if allow else check_quorum(faults, schedule.phase_ms, cfg.is_broker, max_down, gap_ms),
    ):
        if problem:
            raise ScenarioError(path, problem)
    return Scenario(path, schedule, allow, max_down)


__all__ = ["KINDS", "Scenario", "ScenarioError", "load_scenario", "resolve_path"]


def load_named(
    scenario: str,
    cfg: ChaosConfig,
    seed: int | None = None,
    duration: str | None = None,
    spark_deploy: str | None = None,
) -> Scenario:
    """A scenario as the CLI names it (a name under scenarios/ or a path), with --duration as text."""
    duration_ms = None
    if duration is not None:
        try:
            duration_ms = parse_duration(duration)
        except DurationError as exc:
            raise ToolError(f"--duration: {exc}", EXIT_BAD_INPUT) from None
        if duration_ms <= 0:
            raise ToolError("--duration must be positive", EXIT_BAD_INPUT)
    return load_scenario(
        resolve_path(scenario), cfg, seed=seed, duration_ms=duration_ms, spark_deploy=spark_deploy
    )
