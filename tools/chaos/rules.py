"""Insert and remove chaosbed's tagged iptables rules through any shell that runs a command line.

Two shells implement `run(cmd, check) -> ExecResult`: a sidecar in a container's network namespace
(`tools.chaos.sidecar`) and SSH to a systemd host (`tools.chaos.ssh`). Both executors and every undo
share this code, so a rule goes in and comes out the same way on either target.
"""

from __future__ import annotations

from typing import Protocol

from tools.chaos import netfilter
from tools.chaos.outcome import FaultFailed
from tools.chaos.sidecar import ExecResult


class Shell(Protocol):
    def run(self, cmd: list[str], check: bool = True) -> ExecResult: ...


def insert_rules(shell: Shell, rules: list[netfilter.Rule], in_order: bool = False) -> None:
    """Insert every rule at the top of its chain; a failed setup takes back the rules that went in.

    Without in_order each goes first (Pumba's `-I`, so the last ends on top); with it they keep the
    list's order, so a leading ACCEPT is in place before any DROP below it can cut the shell off.
    """
    applied: list[netfilter.Rule] = []
    try:
        for index, rule in enumerate(rules, start=1):
            shell.run(netfilter.insert_cmd(rule, index if in_order else None))
            applied.append(rule)
    except FaultFailed:
        for rule in reversed(applied):
            shell.run(netfilter.delete_cmd(rule), check=False)
        raise


def removal_order(rules: list[netfilter.Rule]) -> list[netfilter.Rule]:
    # An ACCEPT of ours keeps the control channel (SSH) open: it goes only once every DROP is gone.
    return sorted(rules, key=lambda rule: rule[-2:] == ["-j", "ACCEPT"])


def remove_rules(shell: Shell, rules: list[netfilter.Rule], comment: str | None) -> None:
    """Delete the listed rules, then any rule still carrying our comment (duplicates, a crashed retry)."""
    for rule in removal_order(rules):
        # Exit 1 = "Bad rule (does a matching rule exist?)": already gone.
        result = shell.run(netfilter.delete_cmd(rule), check=False)
        if result.exit_code not in (0, 1):
            raise FaultFailed(f"iptables -D: {result.stderr.strip()}")
    if comment is None:
        return
    listing = shell.run(netfilter.LIST_CMD).stdout
    for rule in removal_order(netfilter.tagged_rules(listing, comment)):
        shell.run(netfilter.delete_cmd(rule))


def sweep_rules(shell: Shell, keep_prefixes: tuple[str, ...]) -> list[str]:
    """Delete every chaosbed-tagged rule except those of runs still in progress; returns their comments."""
    swept = []
    for rule in removal_order(netfilter.tagged_rules(shell.run(netfilter.LIST_CMD).stdout)):
        comment = rule[rule.index("--comment") + 1]
        if keep_prefixes and comment.startswith(keep_prefixes):
            continue
        shell.run(netfilter.delete_cmd(rule), check=False)
        swept.append(comment)
    return swept
