"""Docker unit for the stress kind: Pumba's stress-ng sidecar, created with the target's cgroup as its
cgroup parent, so what stress-ng uses counts against the target's own CPU quota and memory limit.

The sidecar carries the sidecar, run and fault labels from its creation and a name journaled before it
exists, so an undo, a restore after SIGKILL or `restore --all` finds and removes it.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from docker.errors import APIError, ImageNotFound, NotFound

from tools.chaos.docker.engine import Engine, require_running
from tools.chaos.outcome import FaultFailed, Unsupported
from tools.chaos.plan import Step
from tools.chaos.schedule import Action
from tools.chaos.targets import Target

# Undo ops, as written in the journal's intent records:
#   {"op": "stress", "container_id": target, "sidecar": name, "cgroup_parent": path}
#       remove our sidecar (by name) if it still exists
#   {"op": "pumba-stress", "container_id": target, "cgroup_parent": path}
#       remove Pumba's own unnamed sidecar (label com.gaiaadm.pumba.skip) in that cgroup parent
PUMBA_SKIP_LABEL = "com.gaiaadm.pumba.skip"


def cgroup_driver(engine: Engine) -> str:
    return engine.once("cgroup-driver", lambda: str(engine.client.info().get("CgroupDriver") or "cgroupfs"))


def cgroup_parent(engine: Engine, cid: str) -> str:
    """The target's own cgroup, as a cgroup parent (cgroupfs driver: <its parent or /docker>/<id>)."""
    parent = engine.inspect(cid)["HostConfig"].get("CgroupParent") or "/docker"
    return f"{parent.rstrip('/')}/{cid}"


def _checks(engine: Engine, target: Target) -> None:
    require_running(engine, target.container_id, target.name)
    driver = cgroup_driver(engine)
    if driver != "cgroupfs":
        # Pumba falls back to system.slice here: stress-ng would then starve the host, not the target.
        raise Unsupported(
            f"cgroup driver {driver}: a container cannot be the cgroup parent of another "
            "(chaosbed needs the cgroupfs driver for stress)"
        )
    try:
        engine.client.images.get(engine.cfg.stress_image)
    except ImageNotFound:
        image = engine.cfg.stress_image
        raise FaultFailed(
            f"image {image} is not on this engine (build it with `make setup`; never pulled)"
        ) from None


def create_line(image: str, name: str, parent: str, args: list[str]) -> str:
    return (
        f"POST /containers/create image={image} name={name} cgroup_parent={parent} network_mode=none "
        f"entrypoint=/stress-ng cmd={' '.join(args)}"
    )


def _remove(engine: Engine, container: Any, calls: list[str], what: str) -> None:
    """Remove a stress sidecar (inspected in full); gone meanwhile (Pumba's auto-remove) is done."""
    state = container.attrs.get("State", {})
    if not state.get("Running") and state.get("ExitCode"):
        logs = container.logs(tail=3).decode(errors="replace").strip().splitlines()
        calls.append(f"{what} had exited {state['ExitCode']}: {logs[-1] if logs else 'no output'}")
    calls.append(f"DELETE /containers/{container.name or container.short_id}?force=1")
    try:
        container.remove(force=True)
    except NotFound:
        pass
    except APIError as exc:
        if "already in progress" not in str(exc):
            raise FaultFailed(f"removing {what} sidecar {container.name}: {exc.explanation or exc}") from None


class StressUnit:
    kinds = ("stress",)
    undo_ops = ("stress", "pumba-stress")

    def checks(self, engine: Engine, action: Action, target: Target, fault_id: str) -> list[Step]:
        return [Step((), lambda calls, stop: _checks(engine, target))]

    def undo_spec(self, engine: Engine, action: Action, target: Target, fault_id: str) -> dict[str, Any]:
        cid = target.container_id
        name = f"{engine.cfg.container_prefix}stress-{uuid.uuid4().hex[:10]}"
        return {"op": "stress", "container_id": cid, "sidecar": name} | {
            "cgroup_parent": cgroup_parent(engine, cid)
        }

    def apply(
        self, engine: Engine, action: Action, target: Target, fault_id: str, spec: dict[str, Any]
    ) -> list[Step]:
        cfg, args, name = engine.cfg, list(action.fault.params["args"]), spec["sidecar"]
        image, parent = cfg.stress_image, spec["cgroup_parent"]
        labels = {cfg.sidecar_label: "true", cfg.run_label: engine.run_id, cfg.fault_label: fault_id}
        created, started = create_line(image, name, parent, args), f"POST /containers/{name}/start"

        def do(calls: list[str], _stop: threading.Event) -> None:
            container = engine.call(
                calls,
                created,
                engine.client.containers.create,
                image,
                args,
                entrypoint=["/stress-ng"],
                name=name,
                labels=labels,
                cgroup_parent=parent,
                network_mode="none",
                stop_signal="SIGKILL",
            )
            engine.call(calls, started, container.start)

        return [Step((created, started), do)]

    def undo(self, engine: Engine, spec: dict[str, Any], fault_id: str) -> list[Step]:
        if spec["op"] == "pumba-stress":
            return [self._undo_pumba(engine, spec)]
        name = spec["sidecar"]

        def do(calls: list[str], _stop: threading.Event) -> None:
            try:
                container = engine.client.containers.get(name)
            except NotFound:
                calls.append(f"skip: no container {name} (never started, or removed already)")
                return
            _remove(engine, container, calls, "stress-ng")

        return [Step((f"DELETE /containers/{name}?force=1",), do)]

    @staticmethod
    def _undo_pumba(engine: Engine, spec: dict[str, Any]) -> Step:
        parent = spec["cgroup_parent"]
        shows = f"DELETE each container labelled {PUMBA_SKIP_LABEL}=true with cgroup_parent={parent}"

        def do(calls: list[str], _stop: threading.Event) -> None:
            listed = engine.client.containers.list(
                all=True, filters={"label": f"{PUMBA_SKIP_LABEL}=true"}, ignore_removed=True
            )
            for summary in listed:
                try:
                    container = engine.client.containers.get(summary.id)  # the listing has no CgroupParent
                except NotFound:
                    continue
                if container.attrs.get("HostConfig", {}).get("CgroupParent") == parent:
                    _remove(engine, container, calls, "Pumba's stress-ng")

        return Step((shows,), do)


UNIT = StressUnit()
