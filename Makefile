# gbc: PostgreSQL backup and point-in-time recovery to object storage.
#
#   make build   every command into ./bin (the multi-call gbc and its WAL front gbc-wal, gbc-* links)
#   make test    installs the test servers, then unit and end-to-end tests, -race, fuzzing
#   make demo    a throwaway cluster, WAL archiving, a backup, and a PITR drill
#   make lint    gofmt, go vet, staticcheck
#   make bench   gbc side by side with barman-cloud and pgBackRest

SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo none)
# PostgreSQL starts gbc for each archive_command and restore_command call,
# so every millisecond of start is paid hundreds of times a minute:
# - disable_grpc_modules: cloud.google.com/go/storage's documented tag that
#   leaves out its gRPC transport (gbc uses the JSON API), with xDS and RLS:
#   13 MB less binary, and 6 ms less CPU at every start;
# - urfave_cli_no_docs: urfave/cli's tag that leaves out its man page and
#   Markdown generators (and blackfriday, a Markdown renderer, with them);
# - CGO_ENABLED=0, as for releases: a static binary, with no dynamic loader
#   and libc to map at each start (about 1 ms of CPU on 2 cores).
BUILD_TAGS := disable_grpc_modules urfave_cli_no_docs
LDFLAGS := -s -w -X github.com/gbc-backup/gbc/cmd/internal/cli.Version=$(VERSION) -X github.com/gbc-backup/gbc/cmd/internal/cli.Commit=$(COMMIT)
GBC_TOOLS ?= $(HOME)/.cache/gbc-tools
export GBC_TOOLS
TOOLS_BIN := $(GBC_TOOLS)/bin
# Tests may take long: the end-to-end suite runs real servers.
TEST_TIMEOUT ?= 60m

.PHONY: build test unit race fuzz e2e lint demo bench deps clean

# Two binaries: gbc, every command with every store provider, and
# gbc-wal, the lean front of gbc-wal-archive and gbc-wal-restore, which
# PostgreSQL starts for every WAL segment: it links file:// alone (a start
# costs a third of gbc's) and execs gbc, next to it, for any other store.
# Every gbc-* name links to gbc, then the front's two to gbc-wal.
build:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath -tags '$(BUILD_TAGS)' -ldflags '$(LDFLAGS)' -o bin/gbc ./cmd/gbc
	CGO_ENABLED=0 $(GO) build -trimpath -tags '$(BUILD_TAGS)' -ldflags '$(LDFLAGS)' -o bin/gbc-wal ./cmd/gbc-wal
	@for c in $$(bin/gbc --list-commands); do ln -sf gbc bin/$$c; done
	@for c in $$(bin/gbc-wal --list-commands); do ln -sf gbc-wal bin/$$c; done

deps:
	@bash scripts/test-deps.sh >/dev/null

# The race detector runs over the unit tests (not the end-to-end suite,
# whose work is done by other processes), and every fuzz target runs for
# FUZZTIME after the seed corpora have passed.
FUZZTIME ?= 15s

test: deps build
	PATH="$(CURDIR)/bin:$(TOOLS_BIN):$$PATH" GBC_BIN="$(CURDIR)/bin" \
		$(GO) test -timeout $(TEST_TIMEOUT) -count=1 ./...
	$(MAKE) --no-print-directory race fuzz

race:
	$(GO) test -race -short -count=1 -timeout 20m $$($(GO) list ./... | grep -v /e2e)

fuzz:
	FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

unit:
	$(GO) test -count=1 -short ./...

lint: deps
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(GO) vet ./...
	$(TOOLS_BIN)/staticcheck ./...

# The drill is the Go program scripts/demo (PostgreSQL through package
# pgrun); GBC_DEMO_SCALE and GBC_DEMO_KEEP tune it, DEMO_ARGS passes flags.
demo: build
	@$(GO) run ./scripts/demo -gbc-bin bin $(DEMO_ARGS)

bench: deps build
	PATH="$(CURDIR)/bin:$(TOOLS_BIN):$$PATH" bash scripts/bench.sh $(BENCH_ARGS)

clean:
	rm -rf bin dist
