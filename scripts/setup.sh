#!/usr/bin/env bash
# Idempotent set-up on Debian 12 (run as root): the apt packages odmm drives, then a
# virtualenv (.venv) on Debian's python3 that also sees Debian's mininet module.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(mininet iproute2 iptables iputils-ping iperf3 tcpdump tshark
              python3 python3-venv python3-dev procps psmisc)
VENV=${VENV:-.venv}

if [ "$(id -u)" -ne 0 ]; then
  echo "odmm set-up needs root (network namespaces, apt)." >&2
  exit 1
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing apt packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.base_prefix != "/usr")' 2>/dev/null; then
  rm -rf "$VENV"
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
stamp="$VENV/.odmm-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev]'
  touch "$stamp"
fi
"$VENV/bin/python" -c 'import mininet.net, scapy, pyroute2, networkx, matplotlib' \
  || { echo "odmm set-up: the virtualenv cannot import its dependencies" >&2; exit 1; }
