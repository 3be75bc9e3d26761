"""iptables rules for `iptables loss` and `iptables partition`, built exactly as Pumba builds them.

Pure functions only. Pumba's filter semantics are kept: one rule per filter value (so filters are OR-ed),
INPUT chain, `-i <iface>` first. Two deliberate differences: every chaosbed rule carries
`-m comment --comment chaosbed:<fault_id>` so restore can find exactly our rules, and the probability is
written exactly as given (Pumba rounds it to 2 decimals, so 0.004 becomes a rule that drops nothing).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from tools.chaos.config import RULE_COMMENT_PREFIX

Rule = list[str]  # a rule spec after -I/-D: ["INPUT", "-i", "eth0", ..., "-j", "DROP"]
# Wait for the xtables lock rather than fail when two faults touch one netns at once.
IPTABLES = ["iptables", "-w", "5"]


def probability_text(probability: float) -> str:
    """The shortest exact decimal for the float, never in exponent form (0.00001, not 1e-05)."""
    return format(Decimal(repr(float(probability))), "f")


def _statistic(params: Mapping[str, Any], pumba: bool) -> list[str]:
    if params["mode"] == "nth":
        return [
            "-m",
            "statistic",
            "--mode",
            "nth",
            "--every",
            str(params["every"]),
            "--packet",
            str(params["packet"]),
        ]
    probability = f"{params['probability']:.2f}" if pumba else probability_text(params["probability"])
    return ["-m", "statistic", "--mode", "random", "--probability", probability]


def loss_rules(params: Mapping[str, Any], comment: str | None) -> list[Rule]:
    """`iptables loss`. With comment=None: byte for byte what Pumba installs (2-decimal probability)."""
    prefix = ["INPUT", "-i", params["interface"]]
    if params["protocol"] != "any":
        prefix += ["-p", params["protocol"]]
    tag = ["-m", "comment", "--comment", comment] if comment is not None else []
    suffix = [*tag, *_statistic(params, pumba=comment is None), "-j", "DROP"]
    filters = (
        [["-s", cidr] for cidr in params["source"]]
        + [["-d", cidr] for cidr in params["destination"]]
        + [["--sport", str(port)] for port in params["src_port"]]
        + [["--dport", str(port)] for port in params["dst_port"]]
    )
    if not filters:
        return [prefix + suffix]
    return [prefix + one + suffix for one in filters]


def partition_rules(interface: str, peer_ips: Sequence[str], comment: str | None) -> list[Rule]:
    """`iptables partition`: drop every packet from each peer address arriving in the target's netns."""
    tag = ["-m", "comment", "--comment", comment] if comment is not None else []
    return [["INPUT", "-i", interface, "-s", f"{ip}/32", *tag, "-j", "DROP"] for ip in peer_ips]


def pumba_partition_rules(interface: str, peer_ips: Sequence[str]) -> list[Rule]:
    """What `pumba iptables --source ip/32 ... loss --probability 1.0` installs for a partition."""
    drop = ["-m", "statistic", "--mode", "random", "--probability", "1.00", "-j", "DROP"]
    return [["INPUT", "-i", interface, "-s", f"{ip}/32", *drop] for ip in peer_ips]


def insert_cmd(rule: Rule, position: int | None = None) -> list[str]:
    """`-I CHAIN [position] ...`; without a position the rule goes first, as Pumba inserts it."""
    where = [rule[0], str(position)] if position is not None else [rule[0]]
    return [*IPTABLES, "-I", *where, *rule[1:]]


def delete_cmd(rule: Rule) -> list[str]:
    return [*IPTABLES, "-D", *rule]


LIST_CMD = [*IPTABLES, "-S"]


def tagged_rules(listing: str, comment: str | None = None) -> list[Rule]:
    """Rules in `iptables -S` output whose comment is `comment` (or any chaosbed comment when None)."""
    found = []
    for line in listing.splitlines():
        if not line.startswith("-A "):
            continue
        tokens = shlex.split(line)
        if "--comment" not in tokens:
            continue
        value = tokens[tokens.index("--comment") + 1]
        if value == comment or (comment is None and value.startswith(RULE_COMMENT_PREFIX)):
            found.append(tokens[1:])
    return found
