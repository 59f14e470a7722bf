# The two set-up commands of the README:
#   make run   installs dependencies, builds, and starts the service on its embedded defaults
#   make test  installs dependencies, builds, and runs every test suite
# Everything else here is a convenience for developers.

BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
WERROR ?= OFF
SANITIZE ?=
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
RUN_ARGS ?=

# What `make run` builds (and nothing else: the first run must be fast; `make test` builds the rest).
RUN_TARGETS = agentfense-server agentfense agentfense-supervisor agentfense-agent

.PHONY: all deps deps-run configure configure-run build test unit-test run clean format tidy

all: build

deps:
	@scripts/bootstrap

deps-run:
	@scripts/bootstrap run

$(BUILD_DIR)/CMakeCache.txt:
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DAF_WERROR=$(WERROR) \
	  -DAF_SANITIZE="$(SANITIZE)" $(CMAKE_FLAGS)

configure: deps $(BUILD_DIR)/CMakeCache.txt

configure-run: deps-run $(BUILD_DIR)/CMakeCache.txt

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

unit-test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) -L unit

test: build
	scripts/run-tests $(BUILD_DIR)

run: configure-run
	cmake --build $(BUILD_DIR) -j $(JOBS) --target $(RUN_TARGETS)
	scripts/run $(BUILD_DIR) $(RUN_ARGS)

format:
	git ls-files '*.cc' '*.h' | xargs clang-format -i

tidy: build
	scripts/lint $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR)
