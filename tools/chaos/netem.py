"""tc commands for the netem kinds, built as Pumba builds them (pkg/chaos/netem, runtime/docker/netem.go).

Pure functions only. One deliberate difference: with IP/port filters Pumba removes its prio tree in four
steps and traffic stalls in between (pumba#166); we delete the root prio qdisc once, which removes the
whole tree at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NETEM_SUBCOMMAND = {
    "netem delay": "delay",
    "netem loss": "loss",
    "netem rate": "rate",
    "netem duplicate": "duplicate",
    "netem corrupt": "corrupt",
}
# Run in a throwaway namespace: does this kernel have sch_netem (and sch_prio, for filtered faults)?
PROBE_NETEM = [["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"]]
PROBE_PRIO = [["tc", "qdisc", "add", "dev", "lo", "root", "handle", "1:", "prio"]]
PROBE_UNDO = ["tc", "qdisc", "del", "dev", "lo", "root"]


def _pct(value: float) -> str:
    return f"{value:.2f}"


def netem_args(kind: str, params: Mapping[str, Any]) -> list[str]:
    """The netem argument string; zero-valued optional fields are left out, as Pumba does."""
    sub = NETEM_SUBCOMMAND[kind]
    if sub == "delay":
        args = ["delay", f"{params['time']}ms"]
        if params["jitter"] > 0:
            args.append(f"{params['jitter']}ms")
        if params["correlation"] > 0:
            args.append(_pct(params["correlation"]))
        if params["distribution"]:
            args += ["distribution", params["distribution"]]
        return args
    if sub == "rate":
        args = ["rate", params["rate"]]
        if params["packetoverhead"] != 0:
            args.append(str(params["packetoverhead"]))
        if params["cellsize"] > 0:
            args.append(str(params["cellsize"]))
        if params["celloverhead"] != 0:
            args.append(str(params["celloverhead"]))
        return args
    args = [sub, _pct(params["percent"])]
    if params["correlation"] > 0:
        args.append(_pct(params["correlation"]))
    return args


def has_filters(params: Mapping[str, Any]) -> bool:
    return bool(params["destination"] or params["egress_port"] or params["ingress_port"])


def apply_cmds(kind: str, params: Mapping[str, Any]) -> list[list[str]]:
    dev = params["interface"]
    args = netem_args(kind, params)
    if not has_filters(params):
        return [["tc", "qdisc", "add", "dev", dev, "root", "netem", *args]]
    cmds = [
        ["tc", "qdisc", "add", "dev", dev, "root", "handle", "1:", "prio"],
        ["tc", "qdisc", "add", "dev", dev, "parent", "1:1", "handle", "10:", "sfq"],
        ["tc", "qdisc", "add", "dev", dev, "parent", "1:2", "handle", "20:", "sfq"],
        ["tc", "qdisc", "add", "dev", dev, "parent", "1:3", "handle", "30:", "netem", *args],
    ]
    base = ["tc", "filter", "add", "dev", dev, "protocol", "ip", "parent", "1:0", "prio", "1", "u32"]
    cmds += [[*base, "match", "ip", "dst", cidr, "flowid", "1:3"] for cidr in params["destination"]]
    cmds += [
        [*base, "match", "ip", "sport", str(p), "0xffff", "flowid", "1:3"] for p in params["egress_port"]
    ]
    cmds += [
        [*base, "match", "ip", "dport", str(p), "0xffff", "flowid", "1:3"] for p in params["ingress_port"]
    ]
    return cmds


def show_root_cmd(dev: str) -> list[str]:
    return ["tc", "qdisc", "show", "dev", dev, "root"]


def root_is_default(show: str) -> bool:
    """The kernel's own root qdisc (handle 0:, e.g. noqueue): nobody, us included, installed one."""
    return " 0: root" in show


def root_is_ours(show: str) -> bool:
    """Our root qdisc: netem itself, or the prio tree we build for filtered faults."""
    return show.startswith("qdisc netem ") or show.startswith("qdisc prio 1: ")


def undo_cmds(params: Mapping[str, Any]) -> list[list[str]]:
    dev = params["interface"]
    if not has_filters(params):
        return [["tc", "qdisc", "del", "dev", dev, "root", "netem"]]
    return [["tc", "qdisc", "del", "dev", dev, "root", "handle", "1:", "prio"]]
