#!/usr/bin/env bash
# README's first command: install Skiff, bring up a local cluster, run the example workload.
#
#   deploy/quickstart.sh                 # as root; state under ~/.skiff/cluster
#   deploy/quickstart.sh --down          # stop the cluster and remove its state
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

if [ "${1:-}" = "--down" ]; then
  exec .venv/bin/ctl cluster down
fi

bash deploy/install.sh

# Put `ctl` on PATH for the user (root installs into /usr/local/bin).
if [ "$(id -u)" = 0 ] && [ -d /usr/local/bin ]; then
  ln -sf "$repo/.venv/bin/ctl" /usr/local/bin/ctl
  ln -sf "$repo/.venv/bin/skiff-controlplane" /usr/local/bin/skiff-controlplane
  [ -x "$repo/.venv/bin/skiff-agent" ] && ln -sf "$repo/.venv/bin/skiff-agent" /usr/local/bin/skiff-agent
fi
ctl="$repo/.venv/bin/ctl"

echo "==> ctl cluster up"
"$ctl" cluster up
if [ "$(id -u)" = 0 ]; then
  # The example's image, built here from Debian's busybox-static: no registry or internet needed.
  images="${HOME}/.skiff/images"
  mkdir -p "$images"
  echo "==> building the busybox image and loading it into the node (ctl image load)"
  .venv/bin/python deploy/build-test-image.py --out "$images/busybox" --archive "$images/busybox.tar" >/dev/null
  "$ctl" image load "$images/busybox.tar"
else
  echo "note: not root, so no agent was started: the example's pods will stay Pending (no nodes)"
fi
echo "==> ctl apply -f deploy/examples/"
"$ctl" apply -f deploy/examples/
echo
"$ctl" get nodes,deployments,pods -o wide || true
cat <<'MSG'

The cluster is up, over TLS: ~/.skiff/config holds its CA and an admin certificate
(`ctl config view`). Try:
  ctl get pods -o wide          # where the example's pods run
  ctl exec client -- wget -qO- http://web     # the site, by name, from another pod
  wget -qO- http://$(ctl get node node-1 -o jsonpath='{.status.addresses[0].address}'):30080
                                # the same through the NodePort, from this machine
  ctl describe deployment web   # what the controllers did, with events
  ctl explain pod.spec          # the schema, from the source
  ctl cluster down              # stop everything and remove the state
Then docs/TUTORIAL.md: three nodes, scaling, failures, the scheduler's reasons, a rolling update.
MSG
