#!/usr/bin/env bash
# Install what Skiff needs on a Debian/Ubuntu machine, into a virtualenv in the repo.
#
#   deploy/install.sh          runtime needs (etcd, iproute2, nftables, busybox-static)
#   deploy/install.sh --test   also what the tests use (docker-registry, skopeo, umoci, runc,
#                              and deploy/vm-kernel.sh: qemu and a guest kernel for tests/vm/)
#
# Idempotent: packages already present are not reinstalled; the venv is reused.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

packages=(etcd-server iproute2 nftables busybox-static ca-certificates zstd)
# qemu-system-x86, kmod, cpio: the VM tests' guests (tests/vm/, kernel from deploy/vm-kernel.sh)
[ "$want_test" = 1 ] && packages+=(docker-registry skopeo umoci runc qemu-system-x86 kmod cpio)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  missing+=(python3-venv)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "error: missing packages (${missing[*]}); run as root or install them first" >&2
    exit 1
  fi
  echo "==> apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian's etcd-server starts a system etcd on :2379; Skiff runs its own on other ports.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python3 - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"error: Skiff needs Python 3.11 or newer, this is {sys.version.split()[0]} "
             "(Debian 12 and Ubuntu 24.04 have it)")
PY

if [ ! -x .venv/bin/python ]; then
  echo "==> python3 -m venv .venv"
  python3 -m venv .venv
fi
extra=""
[ "$want_test" = 1 ] && extra="[test]"
echo "==> pip install -e .${extra}"
.venv/bin/pip install -q --disable-pip-version-check -e ".${extra}"
if [ "$want_test" = 1 ]; then
  if [ "$(id -u)" = 0 ]; then
    deploy/vm-kernel.sh
  else
    echo "note: not root, so no guest kernel for tests/vm/ (they skip); run deploy/vm-kernel.sh as root"
  fi
fi
