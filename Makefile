GO ?= go
CORPUS ?= ../shared/corpus
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

## acceptance: run the product against an external corpus (CORPUS=dir)
acceptance:
	$(GO) run ./test/acceptance -corpus $(CORPUS)
