GO ?= go
CORPUS ?= ../shared/corpus
BENCH_COUNT ?= 6
BENCH_DURATION ?= 10s
BENCH_WAIT ?= 0s
export PATH := $(PATH):/usr/local/go/bin:/usr/sbin

.PHONY: run build test deps vet acceptance bench

## run: serve decisions on 127.0.0.1:8181 with the shipped bundle
run:
	$(GO) run ./cmd/pdp serve $(if $(CONFIG),--config $(CONFIG))

## build: build bin/pdp
build:
	$(GO) build -o bin/pdp ./cmd/pdp

## test: install missing test dependencies, vet, run every test with -race
test: deps vet
	$(GO) test -race -count=1 -timeout 15m ./...

deps:
	@./test/install-deps.sh

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

## bench: run the micro-benchmarks, then the load harness against OPA's
## server (BENCH_WAIT=10m waits for a quiet machine, BENCH_PROFILE=dir keeps
## a CPU profile of every PDP run); writes bench/RESULTS.md
bench:
	$(GO) build -o bin/pdp ./cmd/pdp
	$(GO) build -o bin/opa github.com/open-policy-agent/opa
	@test -x bin/ghz || GOBIN=$(CURDIR)/bin $(GO) install github.com/bojand/ghz/cmd/ghz@v0.93.0 || \
		echo "ghz could not be built, so the gRPC scenario will be skipped"
	echo "# load average before: $$(cat /proc/loadavg)" > bench/micro.txt
	$(GO) test -run '^$$' -bench . -benchmem -count $(BENCH_COUNT) ./... >> bench/micro.txt || \
		{ cat bench/micro.txt; exit 1; }
	echo "# load average after: $$(cat /proc/loadavg)" >> bench/micro.txt
	$(GO) run ./bench/cmd/loadbench -pdp bin/pdp -opa bin/opa -ghz bin/ghz -micro bench/micro.txt \
		-out bench/RESULTS.md -duration $(BENCH_DURATION) -wait-quiet $(BENCH_WAIT) -command "make bench" \
		$(if $(BENCH_PROFILE),-profile $(BENCH_PROFILE))

## acceptance: run the product against an external corpus (CORPUS=dir)
acceptance:
	$(GO) run ./test/acceptance -corpus $(CORPUS)
