# netsh build: one target/ for host and guests, release host, size-optimised recipes.
CARGO   ?= cargo
GUEST    = --target wasm32-wasip2 --profile guest
WASM_DIR = target/wasm32-wasip2/guest
RECIPES  = netns-pair netns-bridge docker-bridge port-forward
TEST_GUESTS = misbehave not-a-recipe
NETSH    = target/release/netsh

.PHONY: all host recipes demo test bench clean

all: host recipes

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
	./demo/demo.sh

# Every test: unit tests of host and SDK, then end-to-end tests in throwaway namespaces.
test: all
	$(CARGO) test --release -p netsh -p netsh-guest -p docker-bridge -p netsh-e2e

bench: all
	$(CARGO) build --release -p netsh-bench
	$(CARGO) build $(GUEST) -p callbench
	./bench/run.sh

clean:
	$(CARGO) clean
	rm -f recipes/*.wasm
