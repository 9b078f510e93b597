# netsh build: one target/ for host and guests, release host, size-optimised recipes.
CARGO   ?= cargo
GUEST    = --target wasm32-wasip2 --profile guest
WASM_DIR = target/wasm32-wasip2/guest
RECIPES  = netns-pair netns-bridge docker-bridge port-forward overlay
TEST_GUESTS = misbehave not-a-recipe
NETSH    = target/release/netsh
# Root runs commands itself; anyone else through sudo (packages, the demo, tests).
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
HOST    := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
# Test binaries run as root (namespaces, netlink); cargo itself builds as you.
RUN_AS_ROOT = $(if $(SUDO),CARGO_TARGET_$(shell echo $(HOST) | tr a-z- A-Z_)_RUNNER="sudo -E")
PACKAGES = gcc libc6-dev iproute2 iptables nftables iputils-ping util-linux procps python3 tmux podman containernetworking-plugins busybox-static bind9-dnsutils dnsmasq-base dnsperf protobuf-compiler etcd-server etcd-client

.PHONY: all setup host recipes demo test fuzz bench clean

all: host recipes

# What a fresh Debian/Ubuntu machine needs: the packages the tests and demo use, the wasm target.
setup:
	$(SUDO) apt-get update -q
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(PACKAGES)
	rustup target add wasm32-wasip2

host:
	$(CARGO) build --release -p netsh

# Recipes land in recipes/NAME.wasm; test guests stay in $(WASM_DIR).
recipes:
	$(CARGO) build $(GUEST) $(addprefix -p ,$(RECIPES) $(TEST_GUESTS))
	@mkdir -p recipes
	@for r in $(RECIPES); do cp $(WASM_DIR)/$$(echo $$r | tr - _).wasm recipes/$$r.wasm; done
	@ls -l recipes/*.wasm

# The main job, in a throwaway network namespace.
demo: all
	$(SUDO) ./demo/demo.sh

# Every test: the bench binaries build; unit and property tests of host and SDK, then end-to-end tests in throwaway namespaces.
test: all
	$(CARGO) build --release -p netsh-bench
	PROPTEST_CASES=$${PROPTEST_CASES:-3000} $(RUN_AS_ROOT) $(CARGO) test --release -p netsh -p netsh-guest -p docker-bridge -p netsh-e2e

# The parsers' property tests with many more inputs (FUZZ_CASES each), timed.
FUZZ_CASES ?= 2000000
fuzz:
	$(CARGO) test --release -p netsh --test fuzz --no-run
	for t in the_shell_grammar_never_panics grants_parse_or_refuse firewall_rule_text_round_trips \
	         durations_sizes_and_ages_never_panic policy_files_never_panic plugin_indexes_never_panic \
	         journal_lines_never_panic audit_logs_never_panic; do \
	  /usr/bin/time -f "$$t: %e s" env PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test -q --release -p netsh --test fuzz -- --exact $$t; \
	done

bench: all
	$(CARGO) build --release -p netsh-bench
	$(CARGO) build $(GUEST) -p callbench
	$(SUDO) ./bench/run.sh

clean:
	$(CARGO) clean
	rm -f recipes/*.wasm
