#!/usr/bin/env bash
# Installs what Dockyard needs on a Debian machine, as root: system packages, a virtualenv in .venv
# with the project in it, and (with --test) what the test suite needs. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

want_tests=0
[ "${1:-}" = "--test" ] && want_tests=1

# libnftables1: published ports and network isolation are nftables rules, written through the library
packages=(python3 python3-venv python3-pip busybox-static docker-registry runc iproute2 util-linux curl
  libseccomp2 libnftables1 tini)
# htpasswd, for the tests' registry with Basic authentication
[ "${1:-}" = "--test" ] && packages+=(apache2-utils)
# gcc and a static libc: the security tests compile small hostile helpers that run inside containers
[ "${1:-}" = "--test" ] && packages+=(gcc libc6-dev)
# iptables (both backends): the tests set its FORWARD policy to DROP, as Docker and ufw leave a host
[ "${1:-}" = "--test" ] && packages+=(iptables)
# crun, so the tests can check a second external runtime (runc is in the list above)
[ "${1:-}" = "--test" ] && packages+=(crun)

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "==> installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  python3 -m venv .venv
fi
extras=""
[ "$want_tests" = 1 ] && extras="[test]"
echo "==> installing dockyard into .venv"
.venv/bin/pip install -q --disable-pip-version-check -e ".${extras}"

if [ "$want_tests" = 1 ] && ! command -v docker >/dev/null && [ ! -x .venv/docker-cli/usr/bin/docker ]; then
  # The tests drive dockyardd with the official docker CLI. Take only the client binary out of
  # Debian's docker.io package: installing the package itself would also start a Docker daemon.
  echo "==> fetching the docker CLI from Debian's docker.io package"
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download docker.io >/dev/null 2>&1 || { apt-get update -qq && apt-get download docker.io >/dev/null; })
  mkdir -p .venv/docker-cli
  dpkg-deb -x "$tmp"/docker.io_*.deb .venv/docker-cli
  rm -rf "$tmp"
fi
