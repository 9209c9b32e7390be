# The README's commands. `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
GO ?= go
HELM ?= helm
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN := bin/bootstrap
# A folder of the Bitnami chart packages the infrastructure subchart pins, for
# machines that cannot reach their registry (scripts/chart-deps.sh). Here the
# workplace keeps them beside the repository; empty: `helm dependency build`.
BOOTSTRAP_BITNAMI_CHARTS ?= $(abspath $(wildcard $(CURDIR)/../shared/bitnami-charts))
export BOOTSTRAP_BITNAMI_CHARTS

.PHONY: build demo test test-short e2e bench lint fuzz schema testenv-up testenv-down clean image image-docker chart-deps chart-lint compose-up

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/bootstrap

## demo: start the local servers and apply examples/local.yaml (plan, apply, verify)
demo: build
	scripts/demo.sh

## test: every test against real servers; a missing server fails (BOOTSTRAP_TEST_REQUIRE=1); then the
## PostgreSQL tests again on each of PG_MAJORS (scripts/testenv.d/pgmajors.sh; the chart deploys 16):
## the backend's suite, the binary's runs against PostgreSQL (PG_CMD_TESTS) and the chart on the node
PG_MAJORS ?= 16 17
PG_CMD_TESTS ?= EndToEnd|WaitsForLateServer|WrongAdminPassword|WrongCredentials|ConnectionCut|SIGTERM|Concurrent|AdminRotation|Lock|TLS|Postgres
test:
	scripts/testenv.sh up >/dev/null
	BOOTSTRAP_TEST_REQUIRE=1 $(GO) test -race -count=1 -timeout 20m ./...
	@set -e; for m in $(PG_MAJORS); do \
	  t0=$$SECONDS; \
	  echo "make test: PostgreSQL $$m (BOOTSTRAP_TEST_PG_MAJOR=$$m)"; \
	  BOOTSTRAP_TEST_PG_MAJOR=$$m BOOTSTRAP_TEST_REQUIRE=1 $(GO) test -race -count=1 -timeout 20m ./internal/initdb/postgres; \
	  BOOTSTRAP_TEST_PG_MAJOR=$$m BOOTSTRAP_TEST_REQUIRE=1 $(GO) test -race -count=1 -timeout 20m -run '$(PG_CMD_TESTS)' ./cmd/bootstrap; \
	  BOOTSTRAP_TEST_PG_MAJOR=$$m BOOTSTRAP_TEST_REQUIRE=1 $(GO) test -count=1 -timeout 20m ./e2e; \
	  echo "make test: PostgreSQL $$m took $$((SECONDS - t0))s"; \
	done

## e2e: install the chart for real on the test environment's one-node Kubernetes: helm install,
## test, upgrade, the re-run Job, serve, uninstall, against the real servers (also part of make test)
e2e:
	scripts/testenv.sh up >/dev/null
	BOOTSTRAP_TEST_REQUIRE=1 $(GO) test -count=1 -timeout 20m -v ./e2e

## test-short: unit tests only, no servers needed (real-server tests skip)
test-short:
	$(GO) test -count=1 ./...

## bench: benchmarks with their baselines measured in the same run
bench:
	scripts/testenv.sh up >/dev/null
	scripts/bench.sh

## lint: gofmt, go vet, staticcheck
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

# Counts, not durations (golang/go#75804: a duration run can fail at its end
# with "context deadline exceeded" and no crasher); about a minute here.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime 250000x -fuzzminimizetime 500x ./internal/config

schema:
	cd schema/gen && $(GO) generate .

testenv-up:
	scripts/testenv.sh up

testenv-down:
	scripts/testenv.sh down

## image: the multi-arch image (linux/amd64 + linux/arm64) without Docker, from the Dockerfile's final
## stage: an OCI layout in bin/image and its tarball bin/bootstrap-image.tar (ctr images import).
## The base is made offline from this machine's CA bundle and tzdata; where the registry is reachable,
## IMAGE_BASE=dockerfile pulls the Dockerfile's gcr.io/distroless/static-debian12:nonroot instead
## (or IMAGE_BASE=oci-layout:DIR, or any image reference)
IMAGE_BASE ?= local
IMAGE_NAME ?= bootstrap:$(VERSION)
image:
	$(GO) run ./cmd/image --version '$(VERSION)' --name '$(IMAGE_NAME)' --base '$(IMAGE_BASE)' --go '$(GO)' \
	  --out bin/image --tar bin/bootstrap-image.tar

## image-docker: the same image with a Docker engine and buildx
image-docker:
	docker buildx build --platform linux/amd64,linux/arm64 --build-arg VERSION=$(VERSION) -t $(IMAGE_NAME) .

## chart-deps: the pinned Bitnami charts into charts/health-platform/charts/infrastructure/charts
## (helm dependency build, or copied from $BOOTSTRAP_BITNAMI_CHARTS)
chart-deps:
	HELM=$(HELM) scripts/chart-deps.sh charts/health-platform/charts/infrastructure

## chart-lint: lint the umbrella, with its subcharts, in each profile (after chart-deps)
chart-lint:
	$(HELM) lint --strict charts/health-platform
	$(HELM) lint --strict charts/health-platform -f charts/health-platform/values-production.yaml
	$(HELM) lint --strict charts/health-platform -f charts/health-platform/values-production.yaml -f charts/health-platform/values-free-tier.yaml

## compose-up: the six services and bootstrap locally (needs a Docker engine)
compose-up:
	deploy/init-secrets.sh
	docker compose -p health-platform -f deploy/docker-compose.yml up --build

clean:
	rm -rf bin
