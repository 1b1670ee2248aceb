#!/bin/sh
# Become this host's Docker Engine. The API is a unix socket only, never TCP.
#
# The host container gets a named set of capabilities rather than --privileged (an engine that
# cannot grant every capability refuses --privileged: docs/environment.md). Docker mounts the
# container's cgroup v1 hierarchies read-only: make them writable so the inner engine can make
# its containers' cgroups below this container's own.
set -eu
if [ -d /sys/fs/cgroup ] && [ ! -f /sys/fs/cgroup/cgroup.controllers ]; then
  awk '$5 ~ "^/sys/fs/cgroup/" {print $5}' /proc/self/mountinfo | while read -r hierarchy; do
    mount -o remount,bind,rw "$hierarchy"
  done
fi
rm -f /var/run/docker.pid /run/docker/containerd/containerd.pid
exec dockerd --host=unix:///var/run/docker.sock "$@"
