# ELB — every target loops over the Go workspace's modules.
# `make run` starts the whole system in one process; `make test` runs every test.

SHELL := /bin/bash
GO ?= go
MODULES := $(shell sed -n 's/^[[:space:]]*\.\/\(.*\)$$/\1/p' go.work)
BIN := $(CURDIR)/bin
STATICCHECK_VERSION := v0.8.2
# CI runs the race detector; locally it can be switched off with RACE=.
RACE ?= -race
TESTFLAGS ?=
export GOFLAGS ?=

.PHONY: all build test test-unit test-e2e test-ipvs lint fmt bench run deps tools clean

all: build

## deps: install what the tests need from Debian when it is missing.
deps:
	@scripts/deps.sh

build:
	@mkdir -p $(BIN)
	@for m in $(MODULES); do echo "== build $$m"; (cd $$m && $(GO) build ./...) || exit 1; done
	$(GO) build -o $(BIN)/elb ./cmd/elb

## test: unit, integration and end-to-end tests of every module, then IPVS in a VM.
test: deps build
	@scripts/test.sh $(RACE) $(TESTFLAGS)
	@$(MAKE) --no-print-directory test-ipvs

test-unit:
	@for m in $(MODULES); do echo "== test $$m"; (cd $$m && $(GO) test -short -count=1 ./...) || exit 1; done

test-e2e: build
	cd cmd/elb && ELB_E2E=1 $(GO) test -count=1 -run E2E -v ./...

## test-ipvs: boot Debian's cloud kernel under qemu and test the IPVS driver against it.
test-ipvs:
	@if [ -x test/ipvs-vm/run.sh ]; then test/ipvs-vm/run.sh; else echo "test-ipvs: test/ipvs-vm/run.sh missing"; exit 1; fi

tools: $(BIN)/staticcheck

$(BIN)/staticcheck:
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

lint: tools
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@for m in $(MODULES); do echo "== lint $$m"; (cd $$m && $(GO) vet ./... && $(BIN)/staticcheck ./...) || exit 1; done

fmt:
	gofmt -w $(MODULES)

bench: deps build
	@scripts/bench.sh

run: build
	$(BIN)/elb up

clean:
	rm -rf $(BIN)
