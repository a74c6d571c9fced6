# The front door. `make demo` and `make test` are the whole set-up on a fresh
# Debian machine with Go: both install what they need through `deps`.

GO ?= go
export XDG_RUNTIME_DIR ?= /tmp/neurolov-xdg
BIN := bin/neurolov

.PHONY: all deps wasm build demo test bench generate check-generated lint fuzz clean

all: build

deps:
	@bash scripts/deps.sh
	@mkdir -p $(XDG_RUNTIME_DIR)

# The browser client's assets (Go wasm, the WASM SIMD kernel, wasm_exec.js)
# go to web/static/dist, which the coordinator embeds; prints their sizes.
wasm: deps
	bash scripts/build-wasm.sh

build: wasm
	$(GO) build -o $(BIN) ./cmd/neurolov

demo: build
	./$(BIN) demo

# npm packages the browser tests inject (axe-core), pinned in e2e/package-lock.json.
e2e/node_modules: e2e/package-lock.json
	cd e2e && npm ci --no-audit --no-fund
	@touch e2e/node_modules

# Beyond one run of everything: the packages that hold cgo callbacks or
# the coordinator's loop run 20 times with the collector at its most
# eager (GOGC=1), which is what exposed cogentcore/webgpu issue 6; the
# coordinator and the worker run once more under the race detector.
STRESS_PKGS := ./internal/backends/ ./shaders/gpu/ ./coordinator/server/
RACE_PKGS := ./coordinator/... ./worker/...

test: wasm e2e/node_modules
	$(GO) vet ./...
	CGO_ENABLED=0 $(GO) build ./...
	$(GO) test -count=1 -timeout 20m ./...
	GOGC=1 $(GO) test -count=20 -timeout 15m $(STRESS_PKGS)
	$(GO) test -race -count=1 -timeout 15m $(RACE_PKGS)

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...
	./$(BIN) bench dispatch
	./$(BIN) bench verify
	./$(BIN) bench kernels
	./$(BIN) bench browser

generate:
	$(GO) generate ./...

# Generated code (templ views) must be committed as generated.
check-generated: generate
	git diff --exit-code -- '*_templ.go'

# Packages that build for the browser (GOOS=js).
JS_PKGS := ./protocol/... ./tensor/... ./worker/... ./identity/... ./shaders/gpu/... ./internal/wsio/... ./wasm/...

lint: deps
	$(GO) vet ./...
	GOOS=js GOARCH=wasm $(GO) vet $(JS_PKGS)
	$(GO) build -o bin/staticcheck honnef.co/go/tools/cmd/staticcheck
	./bin/staticcheck ./...
	GOOS=js GOARCH=wasm ./bin/staticcheck $(JS_PKGS)

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 60s ./protocol/

clean:
	rm -rf bin
