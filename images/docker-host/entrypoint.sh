#!/bin/sh
# Boot this host: make the cgroup hierarchies writable, start the enabled init scripts (the
# Docker Engine, once the docker role has installed it), then idle until asked to stop, and shut
# down as a real host does: the init scripts' stop actions, so the engine stops its containers
# (and bitcoind flushes its chainstate) instead of being killed. The engine API stays a unix
# socket; nothing listens on TCP unless an init script says so.
#
# The host container gets a named set of capabilities rather than --privileged (an engine that
# cannot grant every capability refuses --privileged: docs/environment.md). Docker mounts the
# container's cgroup v1 hierarchies read-only: make them writable so an inner engine can make its
# containers' cgroups below this container's own.
set -eu
if [ -d /sys/fs/cgroup ] && [ ! -f /sys/fs/cgroup/cgroup.controllers ]; then
  awk '$5 ~ "^/sys/fs/cgroup/" {print $5}' /proc/self/mountinfo | while read -r hierarchy; do
    mount -o remount,bind,rw "$hierarchy"
  done
fi
rm -f /var/run/docker.pid /var/run/docker-ssd.pid /run/docker/containerd/containerd.pid
for script in /etc/rc2.d/S*; do
  if [ -x "$script" ]; then
    "$script" start || echo "peerlab-docker-host: $script failed" >&2
  fi
done
shutdown() {
  for script in /etc/rc0.d/K*; do
    if [ -x "$script" ]; then
      "$script" stop || echo "peerlab-docker-host: $script failed" >&2
    fi
  done
  exit 0
}
trap shutdown TERM INT
echo "peerlab-docker-host: booted"
sleep infinity &
wait $!
