#!/usr/bin/env bash
# Install what Skiff needs on a Debian/Ubuntu machine, into a virtualenv in the repo.
#
#   deploy/install.sh          runtime needs (etcd, iproute2, nftables, busybox-static)
#   deploy/install.sh --test   also what the tests use (docker-registry, skopeo, umoci, runc,
#                              dnsmasq-base, dnsperf, etcd-client, vagrant, vagrant-libvirt,
#                              qemu and, via deploy/vm-kernel.sh, a guest kernel for tests/vm/)
#
# Roles, for a machine of a real cluster (root; docs/OPERATIONS.md):
#
#   deploy/install.sh --role server [--advertise-address IP] [--port 6443] [--etcd embedded|service]
#       the control plane as the systemd unit skiff-controlplane (etcd embedded in it, or
#       Debian's etcd service on 127.0.0.1:2379); `ctl` configured with the administrator's
#       credential; prints the join command with a new token (`skiff-controlplane token create`).
#   deploy/install.sh --role agent --server HOST:PORT [--token T --ca-cert-hash H]
#                     [--node-ip IP] [--node-name NAME]
#       the node agent as the systemd unit skiff-agent. Its address is that of the interface
#       that routes to the server (`ip route get`), not the NAT one a Vagrant box has first;
#       --node-ip overrides.
#   --root DIR   install the units, /etc/default files and state under DIR instead of /
#                (a relocated install: for tests and packaging); nothing is started.
#   --no-start   install and enable, do not start (also when systemd is not running).
#
# Idempotent: packages already present are not reinstalled; the venv is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
home=$(pwd)

die() { echo "error: $*" >&2; exit 1; }

want_test=0 role="" server="" token="" ca_hash="" node_ip="" node_name="" advertise="" port=6443
etcd_mode=embedded root="" start=1
while [ $# -gt 0 ]; do
  case "$1" in
    --test) want_test=1 ;;
    --role) role=${2:-}; shift ;;
    --server) server=${2:-}; shift ;;
    --token) token=${2:-}; shift ;;
    --ca-cert-hash) ca_hash=${2:-}; shift ;;
    --node-ip) node_ip=${2:-}; shift ;;
    --node-name) node_name=${2:-}; shift ;;
    --advertise-address) advertise=${2:-}; shift ;;
    --port) port=${2:-}; shift ;;
    --etcd) etcd_mode=${2:-}; shift ;;
    --root) root=${2:-}; shift ;;
    --no-start) start=0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see deploy/install.sh --help)" ;;
  esac
  shift
done
case "$role" in
  ""|server|agent) ;;
  *) die "--role: expected server or agent, got '$role'" ;;
esac
case "$etcd_mode" in
  embedded|service) ;;
  *) die "--etcd: expected embedded or service, got '$etcd_mode'" ;;
esac
[[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] || die "--port: expected 1-65535, got '$port'"
if [ "$role" = agent ]; then
  [ -n "$server" ] || die "--role agent needs --server HOST:PORT (printed by the server's install)"
  [[ "$server" == *:* ]] || die "--server: expected HOST:PORT, got '$server'"
fi
if [ -n "$role" ] && [ -z "$root" ] && [ "$(id -u)" != 0 ]; then
  die "--role $role installs system services: run as root"
fi

# libseccomp2: the agent compiles seccomp profiles with it (through pyseccomp).
packages=(etcd-server iproute2 nftables busybox-static ca-certificates zstd libseccomp2)
# dnsmasq-base and dnsperf: bench/cluster_dns.py compares the cluster DNS with dnsmasq under dnsperf's load.
# vagrant (+ libvirt provider): tests/integration/test_deploy.py runs `vagrant validate` on deploy/vagrant.
[ "$want_test" = 1 ] && packages+=(docker-registry skopeo umoci runc dnsmasq-base dnsperf etcd-client vagrant vagrant-libvirt)
# qemu-system-x86, kmod, cpio: the VM tests' guests (tests/vm/; kernel from deploy/vm-kernel.sh).
[ "$want_test" = 1 ] && packages+=(qemu-system-x86 kmod cpio)
[ "$role" = server ] && packages+=(etcd-client)

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
  # Debian's etcd-server starts a system etcd on :2379; Skiff runs its own on other ports
  # (or uses that one: --role server --etcd service).
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
# pip runs when pyproject.toml changed since the last install into this venv (a stamp file).
stamp=".venv/.skiff-installed${extra}"
want_stamp=$(sha256sum pyproject.toml | cut -d' ' -f1)
# A venv installed with [test] has all the plain install needs (a machine that shares a
# test machine's venv read-only, as the VM bed's guests do, must not run pip into it).
installed() { [ "$(cat "$1" 2>/dev/null)" = "$want_stamp" ]; }
if { ! installed "$stamp" && ! installed ".venv/.skiff-installed[test]"; } || [ ! -x .venv/bin/skiff-controlplane ]; then
  echo "==> pip install -e .${extra}"
  .venv/bin/pip install -q --disable-pip-version-check -e ".${extra}"
  echo "$want_stamp" > "$stamp"
fi

if [ "$want_test" = 1 ]; then
  if [ "$(id -u)" = 0 ]; then
    deploy/vm-kernel.sh
  else
    echo "note: not root, so no guest kernel for tests/vm/ (they skip); run deploy/vm-kernel.sh as root"
  fi
fi

[ -z "$role" ] && exit 0

# ---- roles: systemd units from deploy/systemd/ ----

etc="$root/etc" state="$root/var/lib/skiff" bin="$root/usr/local/bin"
units="$etc/systemd/system"
systemd_running=0
[ -z "$root" ] && [ -d /run/systemd/system ] && systemd_running=1

install_unit() {  # name: deploy/systemd/<name>.service with its paths filled in
  mkdir -p "$units"
  sed -e "s#@SKIFF_HOME@#$home#g" -e "s#@STATE@#$state#g" -e "s#@ETC@#$etc#g" \
    "deploy/systemd/$1.service" > "$units/$1.service"
  echo "==> installed $units/$1.service"
}

start_unit() {  # name
  if [ "$systemd_running" = 1 ]; then
    systemctl daemon-reload
    if [ "$start" = 1 ]; then
      systemctl enable --now "$1.service" && echo "==> started $1 (journalctl -u $1)"
    else
      systemctl enable "$1.service" && echo "==> enabled $1 (not started: --no-start)"
    fi
  else
    echo "note: systemd is not running here${root:+ (or --root given)}; start $1 with its unit's ExecStart"
  fi
}

route_source() {  # host -> the local address of the interface that routes to it
  local host=$1 addr
  addr=$(getent ahostsv4 "$host" 2>/dev/null | awk 'NR==1 {print $1}')
  [ -n "$addr" ] || addr=$host
  ip -o route get "$addr" 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n1
}

mkdir -p "$etc/default" "$state" "$bin"
ln -sf "$home/.venv/bin/ctl" "$bin/ctl"

if [ "$role" = server ]; then
  ln -sf "$home/.venv/bin/skiff-controlplane" "$bin/skiff-controlplane"
  if [ -z "$advertise" ]; then
    # The address of the default route's interface; on Vagrant pass the private network's.
    advertise=$(route_source 198.51.100.1)
    [ -n "$advertise" ] || advertise=127.0.0.1
  fi
  listen="127.0.0.1:$port"
  [ "$advertise" != 127.0.0.1 ] && listen="$listen,$advertise:$port"
  args="--listen $listen --advertise-address $advertise:$port"
  if [ "$etcd_mode" = service ]; then
    args="$args --etcd-endpoints 127.0.0.1:2379"
    [ "$systemd_running" = 1 ] && systemctl enable --now etcd.service
  fi
  echo "SKIFF_CONTROLPLANE_ARGS=\"$args\"" > "$etc/default/skiff-controlplane"
  echo "==> wrote $etc/default/skiff-controlplane: $args"
  install_unit skiff-controlplane
  start_unit skiff-controlplane
  # ctl on this machine: the administrator's credential the control plane writes at its
  # first start (admin.conf: server, cluster CA, client certificate).
  admin="$state/controlplane/admin.conf"
  config="${SKIFF_CONFIG:-$root${HOME:-/root}/.skiff/config}"
  token_cmd="skiff-controlplane token --state-dir $state/controlplane create"
  if [ "$systemd_running" = 1 ] && [ "$start" = 1 ]; then
    for _ in $(seq 1 120); do [ -s "$admin" ] && break; sleep 0.5; done
    [ -s "$admin" ] || die "the control plane did not write $admin within 60 s: journalctl -u skiff-controlplane"
    if [ ! -e "$config" ]; then
      install -D -m 600 "$admin" "$config"
      echo "==> ctl configured ($config, the administrator's credential)"
    else
      echo "note: $config exists; use the cluster's admin credential with: ctl --config $admin ..."
    fi
    # A join token (24 h) and the command for each worker.
    join=""
    for _ in $(seq 1 60); do
      join=$("$home/.venv/bin/skiff-controlplane" token --state-dir "$state/controlplane" create 2>/dev/null) && break
      sleep 1
    done
    [ -n "$join" ] || die "cannot create a join token: $token_cmd"
    echo "join a machine (from its copy of Skiff, as root) with:"
    echo "  deploy/install.sh --role agent ${join#skiff-agent }"
  else
    echo "once the control plane runs: ctl's configuration is $admin (copy it to ~/.skiff/config);"
    echo "a join token and command for each worker: $token_cmd"
    echo "  then on the worker: deploy/install.sh --role agent --server $advertise:$port --token ... --ca-cert-hash ..."
  fi
  exit 0
fi

# agent
ln -sf "$home/.venv/bin/skiff-agent" "$bin/skiff-agent"
server_host=${server%%,*}          # the first of several control planes (HA: a:6443,b:6443)
server_host=${server_host%:*}
server_host=${server_host#[}
server_host=${server_host%]}
if [ -z "$node_ip" ]; then
  node_ip=$(route_source "$server_host")
  [ -n "$node_ip" ] || die "no route to the server $server_host (ip route get); give --node-ip"
fi
args="--server $server --node-ip $node_ip"
[ -n "$node_name" ] && args="$args --node-name $node_name"
if [ -n "$token$ca_hash" ]; then
  if "$home/.venv/bin/skiff-agent" --help 2>/dev/null | grep -q -- '--token'; then
    args="$args --token $token --ca-cert-hash $ca_hash"
  else
    die "--token/--ca-cert-hash: this Skiff's agent has no token join"
  fi
fi
( umask 077; echo "SKIFF_AGENT_ARGS=\"$args\"" > "$etc/default/skiff-agent" )   # it may hold the join token
echo "==> wrote $etc/default/skiff-agent: $args"
install_unit skiff-agent
start_unit skiff-agent
