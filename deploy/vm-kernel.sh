#!/usr/bin/env bash
# Fetch what the VM tests (tests/vm/) boot: Debian's 6.1 kernel with its modules, unpacked
# into a cache directory. Run by deploy/install.sh --test, which installs the host tools that
# run and feed the guests (qemu-system-x86, kmod, cpio, busybox-static).
#
#   deploy/vm-kernel.sh            fetch the kernel (once)
#   deploy/vm-kernel.sh --print    print the kernel directory and exit
#
# The kernel package is `apt-get download`ed by its exact versioned name (the one
# linux-image-amd64 depends on; a wildcard would fetch every flavour, ~1.8 GB) and unpacked with
# `dpkg-deb -x`: nothing is installed on the host. `depmod` runs over the unpacked modules so the
# guest loads them by name (the host's kmod `modprobe -d`, read over 9p). The result is
#   $SKIFF_VM_CACHE/kernel/        (default /var/cache/skiff-vm/kernel)
#     vmlinuz, release, lib/modules/<release>/...
# Idempotent and quick when already there; serialised with flock so parallel runs share one fetch.
set -euo pipefail

cache="${SKIFF_VM_CACHE:-/var/cache/skiff-vm}"
kernel_dir="$cache/kernel"

if [ "${1:-}" = "--print" ]; then
  echo "$kernel_dir"
  exit 0
fi

# deploy/install.sh --test installs these (qemu-system-x86 kmod cpio busybox-static).
for tool in qemu-system-x86_64 depmod cpio busybox apt-get dpkg-deb; do
  if ! command -v "$tool" >/dev/null; then
    echo "error: $tool not found; run deploy/install.sh --test (it installs qemu-system-x86, kmod, cpio, busybox-static)" >&2
    exit 1
  fi
done
if [ "$(id -u)" != 0 ]; then
  echo "error: run as root (writes $cache)" >&2
  exit 1
fi

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9

if [ -s "$kernel_dir/release" ] && [ -f "$kernel_dir/vmlinuz" ]; then
  echo "==> VM kernel $(cat "$kernel_dir/release") already in $kernel_dir"
  exit 0
fi

# The versioned image package that the linux-image-amd64 metapackage points at.
pkg=$(apt-cache show --no-all-versions linux-image-amd64 2>/dev/null \
      | sed -n 's/^Depends: *\(linux-image-[0-9][^ ,]*-amd64\).*/\1/p' | head -n1)
if [ -z "$pkg" ]; then
  apt-get update -qq
  pkg=$(apt-cache show --no-all-versions linux-image-amd64 \
        | sed -n 's/^Depends: *\(linux-image-[0-9][^ ,]*-amd64\).*/\1/p' | head -n1)
fi
if [ -z "$pkg" ]; then
  echo "error: cannot tell which kernel package linux-image-amd64 depends on (apt sources?)" >&2
  exit 1
fi
release="${pkg#linux-image-}"

work=$(mktemp -d "$cache/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "==> apt-get download $pkg"
(cd "$work" && apt-get download -qq "$pkg")
deb=$(ls "$work"/*.deb)
echo "==> dpkg-deb -x $(basename "$deb")"
dpkg-deb -x "$deb" "$work/root"
rm -f "$deb"

mkdir -p "$work/kernel/lib"
mv "$work/root/boot/vmlinuz-$release" "$work/kernel/vmlinuz"
mv "$work/root/lib/modules" "$work/kernel/lib/modules"
# modules.dep and friends: modprobe in the guest finds each module and its dependencies.
depmod -b "$work/kernel" "$release"
echo "$release" > "$work/kernel/release"

rm -rf "$kernel_dir"
mv "$work/kernel" "$kernel_dir"
echo "==> VM kernel $release in $kernel_dir"
