# peerlab: one entry point for setup, deploy, tests and benchmarks. `make help` lists targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
INVENTORY ?= inventories/local
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(BIN):$(PATH)

# Debian packages the controller needs for tests (gpg: release verification; shellcheck: sanity;
# chromium and its driver: the portal's browser tests and `make bench-portal`).
# mmdebstrap is installed by the images role on the Docker hosts that build a base image.
DEBS := gpg shellcheck chromium chromium-driver

.PHONY: docs-graph help deps setup images statoshi node-image differential deploy down purge status events replay sweep traffic bench-collector bench-delay bench-libraries bench-observer bench-portal scenario score test soak lint unit integration molecule sanity bench clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

deps:  ## Install the Debian packages the tests need (root or sudo)
	@missing=$$(for p in $(DEBS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  sudo=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

setup: $(STAMP)  ## Install the pinned toolchain into .venv (no-op when requirements.txt is unchanged)

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

images: setup  ## Build the base and node images on the inventory's Docker hosts
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/images.yml

statoshi: setup  ## Build the Statoshi node image from SOURCE (a git directory or tree; a git URL with REF=<commit>): docs/images.md
	$(BIN)/python tools/build_node.py statoshi "$${SOURCE:?give SOURCE=<a jlopp/statoshi git directory, tree or URL>}" --ref "$${REF:-}"

node-image: setup  ## Build a Bitcoin Core node image from SOURCE (git directory, tree, or URL with REF=<commit>), the same recipe
	$(BIN)/python tools/build_node.py core "$${SOURCE:?give SOURCE=<a bitcoin/bitcoin git directory, tree or URL>}" --ref "$${REF:-}"

deploy: setup  ## Bring up the inventory's networks (default: the lab in inventories/local)
	$(BIN)/ansible-playbook -i $(INVENTORY) deploy.yml

down: setup  ## Remove the networks' containers, keep their volumes
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/teardown.yml

purge: setup  ## Remove the networks' containers and volumes
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/teardown.yml -e peerlab_purge=true

traffic: setup  ## Regtest traffic for DURATION seconds (default 120): blocks and payments
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/traffic.yml -e duration=$${DURATION:-120}

differential: setup  ## One scenario on networks that differ only in implementation, side by side: INVENTORY=inventories/differential (deployed) SCENARIO=scenarios/differential.yml
	$(BIN)/python tools/differential.py --inventory $${INVENTORY:-inventories/differential} --scenario $${SCENARIO:-scenarios/differential.yml} $${NETWORKS:+--networks $$NETWORKS} $${OUT:+--out $$OUT}

sweep: setup  ## Run a scenario over a grid of parameters and seeds: SWEEP=sweeps/partition.yml (CSV and plots in .state/sweeps/<name>; resumes)
	$(BIN)/python tools/sweep.py $${SWEEP:-sweeps/partition.yml} --inventory $(INVENTORY)

scenario: setup  ## Run a scenario and write its report: SCENARIO=scenarios/split-brain.yml (docs/experiments.md)
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/scenario.yml -e scenario=$${SCENARIO:-scenarios/split-brain.yml}

events: setup  ## Live events: NETWORK=lab NODE=n1,n2 TYPE=inv,ping,conn,block (JSON=1: JSON lines; DURATION=s: stop after)
	$(BIN)/python tools/eventlog.py --network "$${NETWORK:-}" --node "$${NODE:-}" --type "$${TYPE:-}" \
	  --seconds "$${DURATION:-0}" $${JSON:+--json}

replay:  ## Archived events: SINCE=-3600 (or epoch s) UNTIL= NETWORK= NODE= TYPE= JSON=1 SPEED=1 (OBSERVER=peerlab-observer)
	docker exec $${OBSERVER:-peerlab-observer} python3 /usr/local/lib/peerlab/observer.py replay --since "$${SINCE:-}" \
	  --until "$${UNTIL:-}" --network "$${NETWORK:-}" --node "$${NODE:-}" --type "$${TYPE:-}" --speed "$${SPEED:-0}" $${JSON:+--json}

status: setup  ## Print every node's peers, height and tip
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/status.yml

lint: setup  ## ruff, mypy, yamllint via ansible-lint (production profile), argument specs
	$(BIN)/ruff check plugins tests images molecule docs bench tools
	$(BIN)/mypy
	$(BIN)/ansible-lint

sanity: setup deps  ## ansible-test sanity on a copy of the collection
	tests/sanity.sh

unit: setup deps  ## Fast tests of pure logic
	$(BIN)/pytest -q tests/unit

integration: setup deps  ## Real Docker, real bitcoind: image build and a regtest node
	$(BIN)/pytest -q --durations=20 tests/integration

molecule: setup  ## Scenarios default (the local lab) and swarm (three Docker hosts): converge, idempotence, verify
	cd $(CURDIR) && $(BIN)/molecule test -s default
	cd $(CURDIR) && $(BIN)/molecule test -s swarm

test: lint sanity unit  ## Everything CI runs: lint, sanity, unit, then integration and molecule together (tests/together.sh)
	tests/together.sh

soak: setup deps  ## The Observer's five quiet minutes of traffic (a minute in make test), then every attack (not part of test)
	QUIET_SECONDS=300 $(BIN)/pytest -q --durations=10 tests/integration/test_observer.py

bench: images  ## Time to a converged network against the bare-container floor (not part of test)
	$(BIN)/python bench/bench.py

bench-observer: images  ## Observer, bus and collector CPU/memory and event latency, BENCH_NODES (20) nodes under traffic
	$(BIN)/python bench/observer.py

score: images  ## The detectors' proving ground: every attack SCORE_RUNS (3) times, seeded, between quiet traffic; writes docs/score.json
	$(BIN)/python bench/score.py

bench-delay: images  ## The delay program (latency without netem): packets/s it holds, its CPU, how exact (BENCH_DELAY ms, BENCH_RATES)
	$(BIN)/python bench/delay.py

bench-libraries: images  ## The bus's and the feed's hand-written protocol code against nats-py and websockets: CPU per event
	$(BIN)/pip install --quiet --disable-pip-version-check nats-py==2.16.0 websockets==15.0.1
	$(BIN)/python bench/libraries.py

bench-collector: bench-observer  ## The same run (the collector's cost is one of its numbers)

bench-portal: setup deps  ## The portal drawing a BENCH_NODES (200) node network in headless Chromium, then the page while it reports for BENCH_LIVE (60) s (after make deploy)
	$(BIN)/python bench/portal.py

docs-graph: setup  ## Redraw docs/default-lab.svg from the default topology
	$(BIN)/python docs/draw.py $(INVENTORY)/02-topology.peerlab.yml docs/default-lab.svg

clean:  ## Remove the venv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
