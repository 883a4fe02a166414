# pspguard: a compliance gateway for PSP traffic, built on Caddy.
GO      ?= go
BIN     := bin
FUZZTIME ?= 2m
HISTORY_SECONDS ?= 600
# pspguard's version as `pspguard version` prints it: the release tag, or
# the commit after it, with -dirty for uncommitted changes. Without git the
# binary names what Go recorded.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
LDFLAGS := $(if $(VERSION),-X main.version=$(VERSION))
# Tests that build whole Caddy binaries. make test runs them after the
# others, one package at a time, so that their compiles do not starve the
# tests that run many requests at once.
BUILD_TESTS := ^(TestCaddyBuildWithPlugin|TestXcaddyBuild|TestVersionCommand)$$

.PHONY: all build run test history bench lint fuzz clean

all: build

## build: bin/pspguard (Caddy + psp_guard, stamped with VERSION) and bin/pspsim (the PSP simulator)
build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/pspguard ./cmd/pspguard
	$(GO) build -o $(BIN)/pspsim ./cmd/pspsim

## run: the simulator on 127.0.0.1:9001 and pspguard on :8080 (Klarna), :8081 (Hellgate) and :8082 (Stripe); Ctrl-C stops both
run: build
	@set -e; \
	./$(BIN)/pspsim -listen 127.0.0.1:9001 -password shoeshop:secret -password digitalshop:secret & sim=$$!; \
	./$(BIN)/pspguard run --config Caddyfile --adapter caddyfile & guard=$$!; \
	stop() { kill $$guard $$sim 2>/dev/null; wait $$guard $$sim 2>/dev/null; echo; echo "pspguard and pspsim stopped."; }; \
	trap 'stop; exit 0' INT TERM; trap stop EXIT; \
	for i in $$(seq 1 100); do \
		curl -fs -o /dev/null localhost:2019/config/ 2>/dev/null && break; sleep 0.1; \
	done; \
	cat testdata/try.txt; \
	wait $$guard

## test: every test, with the race detector, a real Redis when redis-server is installed, the alert rule tests when promtool is installed, short fuzz runs and the shipped rules cases
test: lint
	.ci/with-redis $(GO) test -race -count=1 -skip '$(BUILD_TESTS)' ./...
	$(GO) test -count=1 -p 1 -run '$(BUILD_TESTS)' . ./cmd/pspguard
	.ci/fuzz 5s
	$(GO) run ./cmd/pspguard rules validate testdata/rules/example.yaml
	$(GO) run ./cmd/pspguard rules test testdata/rules/example.yaml testdata/rules/example_cases.yaml
	$(GO) run ./cmd/pspguard rules test testdata/rules/example-stripe.yaml testdata/rules/example-stripe_cases.yaml

## history: the randomized history test of the ledger (cmd/pspguard TestHistory) for HISTORY_SECONDS (default 600) per store; HISTORY_SEED=N repeats a run's draws
history:
	HISTORY_SECONDS=$(HISTORY_SECONDS) HISTORY_SEED=$(HISTORY_SEED) $(GO) test -count=1 -v -run '^TestHistory$$' \
		-timeout $$(( $(HISTORY_SECONDS) * 2 + 600 ))s ./cmd/pspguard/

## bench: micro-benchmarks and the side-by-side load comparison (needs wrk and redis-server; internal/benchrun)
bench: build
	$(GO) run ./internal/benchrun/cmd/bench

## lint: gofmt and go vet
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

## fuzz: every fuzz target for FUZZTIME (default 2m) each
fuzz:
	.ci/fuzz $(FUZZTIME)

clean:
	rm -rf $(BIN)
