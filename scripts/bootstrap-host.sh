#!/usr/bin/env bash
# Debian packages the control host needs before Python and Ansible can take over:
# a venv-capable python3, Java and Maven (Kafka/Spark jars are resolved here), Go (Toxiproxy is built
# from source), PostgreSQL server binaries (tests start throwaway servers), mmdebstrap, and the OpenSSH
# client (chaos on the VM target, and its tests, reach systemd hosts over SSH), and Chromium (the HTML
# report's test opens it headless, as a reader would), and mkfs.ext4 (the size-capped data volumes).
set -euo pipefail
need=()
command -v mvn >/dev/null || need+=(maven)
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v go >/dev/null || need+=(golang-go)
[ -x /usr/lib/postgresql/15/bin/postgres ] || need+=(postgresql-15)
command -v iptables >/dev/null || need+=(iptables)
command -v ssh >/dev/null && command -v ssh-keygen >/dev/null || need+=(openssh-client)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
command -v chromium >/dev/null || need+=(chromium)
[ -x /sbin/mkfs.ext4 ] || [ -x /usr/sbin/mkfs.ext4 ] || need+=(e2fsprogs)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing Debian packages (${need[*]}); run 'make setup' as root or install them" >&2
    exit 2
  fi
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi
