"""The VM target's hosts file: which services run as systemd units on which hosts, and how to reach them.

`tools chaos run --hosts FILE` sends the faults of these services over SSH to systemd and iptables on the
host; every other service is still a container on the local engine. `playbooks/chaos.yml` writes the file
from the inventory (hosts with `chaosbed_deploy: systemd`); a user may write it by hand:

    hosts:
      kafka-1:                      # the service name scenarios use as `target`
        ssh_host: 192.0.2.11        # required
        ssh_port: 22                # default 22
        ssh_user: debian            # default root
        ssh_key: ~/.ssh/id_ed25519  # default: ssh's own choice
        become: true                # run as root through `sudo -n` (default: true unless ssh_user is root)
        unit: kafka                 # required: the systemd unit (".service" may be left out)
        address: 192.0.2.11         # where its peers see it (partitions cut this off); default ssh_host
        interface: eth0             # network faults on this host use it instead of the fault's interface
      # A host running several services gets one entry per service, each with its own unit:
      postgres:       {ssh_host: 192.0.2.20, unit: postgresql@15-main}
      spark-worker-1: {ssh_host: 192.0.2.20, unit: chaosbed-spark-worker}
    ssh_known_hosts: build/known_hosts  # optional, for every host: ssh's UserKnownHostsFile

Faults on a unit (kill, stop, pause, restart, stress, kill-executor) touch that unit only; network faults
act on the whole host, so they reach every service of it. A service named twice is refused.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from tools.errors import EXIT_BAD_INPUT, ToolError

_KEYS = frozenset({"ssh_host", "ssh_port", "ssh_user", "ssh_key", "become", "unit", "address", "interface"})
# Unit names as systemd spells them; nothing a remote shell could read as syntax.
_UNIT = re.compile(r"[A-Za-z0-9:_.@\\-]+")
_NAME = re.compile(r"[A-Za-z0-9._-]+")
_HOST = re.compile(r"[A-Za-z0-9.:_-]+")
_IFACE = re.compile(r"[a-zA-Z][a-zA-Z0-9.:_-]*")


@dataclass(frozen=True)
class VmHost:
    service: str
    ssh_host: str
    unit: str
    ssh_port: int = 22
    ssh_user: str = "root"
    ssh_key: str = ""
    become: bool = False
    address: str = ""
    interface: str = ""
    known_hosts: str = ""  # ssh's UserKnownHostsFile; "" = ssh's default

    @property
    def label(self) -> str:
        """How timelines and errors name it: the unit and where it runs."""
        return f"{self.unit}@{self.ssh_host}"

    def to_json(self) -> dict[str, Any]:
        """As journaled with each fault, so a restore needs no hosts file."""
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> VmHost:
        return cls(**{k: v for k, v in doc.items() if k in cls.__dataclass_fields__})


class _DuplicateKey(Exception):
    def __init__(self, key: str, line: int) -> None:
        super().__init__(key)
        self.key, self.line = key, line


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error (YAML keeps the last):
    a service named twice, e.g. a host's one name for its two services, would silently lose one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                raise _DuplicateKey(key, key_node.start_mark.line + 1)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class HostsError(ToolError):
    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}", EXIT_BAD_INPUT)


def _host(path: Path, service: str, raw: Any, known_hosts: str) -> VmHost:
    where = f"host {service!r}"
    if not isinstance(raw, dict):
        raise HostsError(path, f"{where} must be a mapping")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise HostsError(path, f"{where}: unknown key(s) {', '.join(unknown)}")
    for key in ("ssh_host", "unit"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise HostsError(path, f"{where}: '{key}' is required")
    if not _HOST.fullmatch(raw["ssh_host"]):
        raise HostsError(path, f"{where}: ssh_host {raw['ssh_host']!r} is not a host name or address")
    unit = raw["unit"] if "." in raw["unit"] else f"{raw['unit']}.service"
    if not _UNIT.fullmatch(unit):
        raise HostsError(path, f"{where}: unit {raw['unit']!r} is not a systemd unit name")
    port = raw.get("ssh_port", 22)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise HostsError(path, f"{where}: ssh_port must be a port number, got {port!r}")
    user = raw.get("ssh_user", "root")
    if not isinstance(user, str) or not _NAME.fullmatch(user):
        raise HostsError(path, f"{where}: ssh_user {user!r} is not a user name")
    become = raw.get("become", user != "root")
    if not isinstance(become, bool):
        raise HostsError(path, f"{where}: become must be true or false")
    key = raw.get("ssh_key") or ""
    if not isinstance(key, str):
        raise HostsError(path, f"{where}: ssh_key must be a path")
    if key and not Path(key).expanduser().is_file():
        raise HostsError(path, f"{where}: ssh_key {key} does not exist")
    address = raw.get("address") or raw["ssh_host"]
    if not isinstance(address, str) or not _HOST.fullmatch(address):
        raise HostsError(path, f"{where}: address {address!r} is not a host name or address")
    interface = raw.get("interface") or ""
    if not isinstance(interface, str) or (interface and not _IFACE.fullmatch(interface)):
        raise HostsError(path, f"{where}: interface {interface!r} is not an interface name")
    return VmHost(
        service=service,
        ssh_host=raw["ssh_host"],
        unit=unit,
        ssh_port=port,
        ssh_user=user,
        ssh_key=str(Path(key).expanduser()) if key else "",
        become=become,
        address=address,
        interface=interface,
        known_hosts=known_hosts,
    )


def load_hosts(path: Path) -> dict[str, VmHost]:
    """Read and validate a hosts file; any problem is one line naming the file and the host."""
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except _DuplicateKey as exc:
        raise HostsError(path, f"{exc.key!r} is given twice (line {exc.line})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HostsError(path, f"cannot read file: {getattr(exc, 'strerror', None) or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise HostsError(path, f"invalid YAML{where}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("hosts"), dict):
        raise HostsError(path, "expected a mapping with 'hosts: {<service>: {...}}'")
    known_hosts = doc.get("ssh_known_hosts") or ""
    if not isinstance(known_hosts, str):
        raise HostsError(path, "ssh_known_hosts must be a path")
    unknown = sorted(set(doc) - {"hosts", "ssh_known_hosts"})
    if unknown:
        raise HostsError(path, f"unknown top-level key(s) {', '.join(map(str, unknown))}")
    hosts = {}
    for service, raw in doc["hosts"].items():
        if not isinstance(service, str) or not _NAME.fullmatch(service):
            raise HostsError(path, f"service name {service!r} is not valid")
        hosts[service] = _host(path, service, raw, str(Path(known_hosts).expanduser()) if known_hosts else "")
    return hosts
