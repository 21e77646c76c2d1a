# yolodistill: knowledge distillation for YOLO detectors. `make help` lists targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
.DEFAULT_GOAL := help

# OpenBLAS is used when its library is installed (pipelines/setup.sh installs it
# as root); otherwise the pure-Go kernels. Evaluated when a recipe runs, after setup.
# Evaluated once, on first use (after setup ran). grep reads all of ldconfig's
# output (no -q) so that pipefail never sees a SIGPIPE.
# oneDNN (PyTorch's CPU convolution library; build tag dnnl) joins OpenBLAS when
# its library and header are installed (Debian: libdnnl-dev; pipelines/setup.sh
# installs it as root); without it the convolutions run our own kernels.
GOTAGS = $(eval GOTAGS := $(shell ldconfig -p 2>/dev/null | grep 'libopenblas\.so ' >/dev/null && echo openblas || echo purego) \
  $(shell ldconfig -p 2>/dev/null | grep 'libopenblas\.so ' >/dev/null && ldconfig -p 2>/dev/null | grep 'libdnnl\.so' >/dev/null && \
    test -f /usr/include/oneapi/dnnl/dnnl.h && echo dnnl))$(GOTAGS)
GO = $(if $(filter openblas,$(GOTAGS)),CGO_LDFLAGS=-lopenblas,CGO_ENABLED=0) go
# MPI (data-parallel training, the build tag mpi) when libmpi's pkg-config
# file is installed (Debian: libopenmpi-dev) and cgo is on (the OpenBLAS
# build). Without it the tools are single-process (and refuse to start under
# an MPI launcher).
MPITAG = $(eval MPITAG := $(if $(filter openblas,$(GOTAGS)),$(shell pkg-config --exists mpi 2>/dev/null && echo mpi)))$(MPITAG)
TOOLS := $(notdir $(wildcard tools/*))

.PHONY: help setup build test test-onnx test-mpi onnx-bench race vet bench demo clean

# The pipelines: make demo, voc-distill, coco-distill, bccd-bench.
include pipelines/knobs.mk pipelines/demo.mk pipelines/recipes.mk pipelines/bccd.mk

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | sort

setup: ## install what is missing (OpenBLAS via apt-get when root), or say what falls back
	@bash pipelines/setup.sh
	@# Not $(GOTAGS): make expands a whole recipe before running it, so that
	@# would be decided before setup.sh installed anything.
	@ldconfig -p 2>/dev/null | grep 'libopenblas\.so ' >/dev/null || echo "yolodistill: OpenBLAS not found; using the pure-Go kernels (slower)" >&2

build: setup ## build every tool into bin/ (with MPI when libopenmpi-dev is installed); says what it built
	@mkdir -p bin
	$(GO) build -tags '$(strip $(GOTAGS) $(MPITAG))' -o bin/ ./tools/...
	@bin/detect-train --version

vet: setup ## go vet, gofmt, go.mod tidy, and the layout rules (pipelines/layout.sh: who may import whom)
	$(GO) vet -tags '$(GOTAGS)' ./...
	$(if $(MPITAG),$(GO) vet -tags '$(GOTAGS) mpi' ./pkg/dist ./pkg/cli/... ./tools/detect-train ./tools/student-train)
	@$(GO) mod tidy -diff >/dev/null 2>&1 || { echo "go.mod/go.sum are not tidy: run 'go mod tidy'"; $(GO) mod tidy -diff; exit 1; }
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@GO="$(GO)" GOTAGS='$(GOTAGS)' bash pipelines/layout.sh

test: vet ## run every test (tiny sizes; under ~15 minutes on 2 cores)
	$(GO) test -tags '$(GOTAGS)' -timeout 30m ./...

# Exported ONNX models in onnxruntime-node (npm) and onnx.checker
# (python3-onnx): installs them, so it is apart from `make test`.
ONNXRT_DIR := .cache/onnxrt
ONNXRT_VERSION := 1.31.1

test-onnx: setup ## exported ONNX models run in onnxruntime-node and pass onnx.checker (installs python3-onnx, nodejs, onnxruntime-node into .cache/onnxrt)
	@bash pipelines/onnx_setup.sh $(ONNXRT_DIR) $(ONNXRT_VERSION)
	YOLODISTILL_ONNXRT=$(CURDIR)/$(ONNXRT_DIR)/node_modules $(GO) test -tags '$(GOTAGS)' -count=1 -run TestONNXRuntime -v ./tools/detect-export/

onnx-bench: build ## images/s of the exported BCCD student in onnxruntime-node beside detect-infer's network time (BCCD=path/to/BCCD)
	@bash pipelines/onnx_setup.sh $(ONNXRT_DIR) $(ONNXRT_VERSION)
	@bash pipelines/onnx_bench.sh $(or $(BCCD),../shared/datasets/bccd) out/onnx-bench $(CURDIR)/$(ONNXRT_DIR)/node_modules

# The MPI tests (build tag mpi, YOLODISTILL_MPI_TESTS=1) start mpirun
# --allow-run-as-root --oversubscribe -np 2 and -np 3 themselves: pkg/dist's
# collectives and watchdog, detect-train and student-train against one
# process, a killed rank, interrupt and resume.
test-mpi: ## the MPI tests over mpirun -np 2 and -np 3 (installs Open MPI with apt-get as root; ~2 minutes)
	@bash pipelines/setup.sh mpi
	YOLODISTILL_MPI_TESTS=1 $(if $(filter openblas,$(GOTAGS)),CGO_LDFLAGS=-lopenblas) CGO_ENABLED=1 \
	  go test -tags '$(GOTAGS) mpi' -timeout 30m -run MPI ./pkg/dist ./tools/detect-train ./tools/student-train

# The packages that start goroutines (kernels, loader, losses, metrics,
# downloads, the soft-target source) and the tools that drive them.
RACE_PKGS := ./pkg/nn ./pkg/dataset ./pkg/augment ./pkg/yolo/... ./pkg/detector ./pkg/distill ./pkg/teacher ./pkg/metrics ./pkg/checkpoint ./pkg/train ./pkg/dist \
	./tools/detect-train ./tools/student-train ./tools/teacher-dump

race: setup ## the goroutine-starting packages under the race detector (cgo: needs gcc)
	@if ! command -v gcc >/dev/null; then echo "make race: the race detector needs cgo and gcc" >&2; exit 1; fi
	$(if $(filter openblas,$(GOTAGS)),CGO_LDFLAGS=-lopenblas,) CGO_ENABLED=1 go test -race -tags '$(GOTAGS)' -timeout 30m $(RACE_PKGS)

bench: build ## benchmarks as JSON lines, beside PyTorch's when python3-torch is installed; BCCD=DIR adds the BCCD student step and teacher-dump views/s
	@BCCD='$(BCCD)' GOTAGS='$(GOTAGS)' $(if $(filter openblas,$(GOTAGS)),CGO_LDFLAGS=-lopenblas,CGO_ENABLED=0) bash pipelines/bench.sh

demo: build ## teacher, soft targets, baseline and distilled student on the synthetic set; table (minutes on 2 cores: the README says how long)
	@$(MAKE) --no-print-directory demo-results
	@bash pipelines/demo.sh $(DEMO)

clean: ## remove build outputs
	rm -rf bin
