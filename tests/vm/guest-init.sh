#!/bin/busybox sh
# PID 1 of a test guest (tests/vm/machines.py puts this in the initramfs as /init).
#
# Stage 1, in the initramfs: load the virtio and 9p modules, build the guest's root on a tmpfs
# (rootfs itself cannot be pivot_root'ed away from, which every container start does), mount
# this machine's root read-only over 9p at /host and bind /usr /etc /work /opt /root /home
# from it, so the guest runs the host's Python and the repo's venv. Everything else (/tmp,
# /run, /var) is the tmpfs: writable, overlay-capable, gone at power-off.
# Stage 2, in the new root: cgroup2 alone at /sys/fs/cgroup (booted with cgroup_no_v1=all),
# modules on demand through the host's kmod modprobe over the unpacked kernel, eth0 with
# its address, then the command server (tests/vm/guestd.py) on the virtio-serial port.
# PID 1 stays a shell that waits on the server: ash's `wait` reaps every child, orphans of
# double-forked container supervisors included.
#
# Settings come from the kernel command line: skiff.name= skiff.ip=<addr/len> skiff.gw=
# skiff.kdir=<unpacked kernel on the host> skiff.python= skiff.guestd= skiff.binds=a,b,c
set -u
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

if [ "${SKIFF_STAGE:-1}" = 1 ]; then
  /bin/busybox --install -s /bin
  mount -t proc proc /proc
  mount -t sysfs sysfs /sys
  mount -t devtmpfs devtmpfs /dev
  for m in $(cat /modules/order); do insmod "/modules/$m" || echo "init: insmod $m failed"; done

  mkdir -p /newroot
  mount -t tmpfs -o mode=0755 root /newroot
  mkdir -p /newroot/host
  mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 hostroot /newroot/host \
    || { echo "init: cannot mount the host root over 9p"; poweroff -f; }
  binds=$(sed -n 's/.*skiff\.binds=\([^ ]*\).*/\1/p' /proc/cmdline | tr , ' ')
  for d in usr etc $binds; do
    [ -d "/newroot/host/$d" ] || continue
    mkdir -p "/newroot/$d"
    mount --bind "/newroot/host/$d" "/newroot/$d"
  done
  for l in bin sbin lib lib64; do
    [ -L "/newroot/host/$l" ] && ln -s "usr/$l" "/newroot/$l"
  done
  mkdir -p /newroot/proc /newroot/sys /newroot/dev /newroot/run /newroot/tmp /newroot/var/tmp \
    /newroot/var/lib /newroot/var/log /newroot/skiff
  chmod 1777 /newroot/tmp /newroot/var/tmp
  ln -s ../run /newroot/var/run
  cp /init /newroot/skiff/init
  umount /proc /sys /dev 2>/dev/null
  export SKIFF_STAGE=2
  exec switch_root /newroot /usr/bin/busybox sh /skiff/init
fi

# ---- stage 2: in the new root -------------------------------------------------------
arg() { sed -n "s/.*skiff\\.$1=\\([^ ]*\\).*/\\1/p" /proc/cmdline; }
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=1777 shm /dev/shm
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
mount -t bpf bpf /sys/fs/bpf 2>/dev/null

kdir=$(arg kdir)
printf '#!/bin/sh\nexec /usr/sbin/modprobe -d /host%s "$@"\n' "$kdir" > /skiff/modprobe
chmod 755 /skiff/modprobe
echo /skiff/modprobe > /proc/sys/kernel/modprobe
/skiff/modprobe -a overlay bridge veth br_netfilter nf_tables nft_chain_nat nft_ct nft_nat \
  nft_masq nft_redir nft_fib_inet nft_reject_inet nft_compat nf_conntrack nf_nat xt_conntrack \
  tun ipvlan macvlan dummy 2>/dev/null

hostname "$(arg name)"
ip link set lo up
ip link set eth0 up
ip addr add "$(arg ip)" dev eth0
[ -n "$(arg gw)" ] && ip route add default via "$(arg gw)"
sysctl -qw net.ipv4.ip_forward=1

echo "init: ready for guestd after $(cut -d' ' -f1 /proc/uptime)s"
while :; do
  "$(arg python)" -u "$(arg guestd)" </dev/null &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do wait "$pid"; done
  echo "init: guestd exited; restarting"
  sleep 1
done
