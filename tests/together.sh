#!/usr/bin/env bash
# `make test`'s integration and molecule stages, in less wall time than one after the other.
#
# Most integration tests wait on nodes, Graphite and playbooks, and the machine is idle two thirds
# of the time they run; so is the swarm scenario (three Docker hosts in containers). So they run
# side by side: `molecule test -s swarm` in the background while the integration tests that
# measure no time (`-m "not timing"`) run. Then the tests that measure time (ping times, detector
# delays, a page's response: marker `timing`) run alone, and the default scenario last (it
# deploys the default lab, which `make deploy` would). Every stage runs whatever an earlier one
# did; the exit status is the first failure's. Nothing here is a different test from `make
# integration` and `make molecule`: the same tests, in another order.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
bin="$root/.venv/bin"
log=$(mktemp --tmpdir peerlab-swarm.XXXXXX.log)
trap 'rm -f "$log"' EXIT
status=0
stage() {  # name, then the command: its status kept if it is the first failure
  local name=$1 started=$SECONDS
  shift
  "$@"
  local rc=$?
  echo "== ${name}: rc=${rc} in $((SECONDS - started)) s"
  if [ "$rc" -ne 0 ] && [ "$status" -eq 0 ]; then status=$rc; fi
}

# The images first (a no-op when they are built): the two stages below must not build them twice at once.
stage images "$bin/ansible-playbook" -i inventories/local playbooks/images.yml
stage "docker host image" "$bin/ansible-playbook" -i inventories/local tests/hosts/docker-hosts.yml \
  -e '{"test_hosts_names": [], "test_hosts_state": "present"}'

echo "== swarm scenario in the background (its output follows when it ends; log: $log)"
"$bin/molecule" test -s swarm > "$log" 2>&1 &
swarm=$!
stage "integration (not timing, beside the swarm)" "$bin/pytest" -q --durations=20 -m "not timing" tests/integration
wait "$swarm"
swarm_rc=$?
cat "$log"
echo "== molecule swarm: rc=${swarm_rc}"
if [ "$swarm_rc" -ne 0 ] && [ "$status" -eq 0 ]; then status=$swarm_rc; fi

stage "integration (timing, alone)" "$bin/pytest" -q --durations=20 -m timing tests/integration
stage "molecule default" "$bin/molecule" test -s default
exit "$status"
