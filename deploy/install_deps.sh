#!/usr/bin/env bash
# Installs the Debian packages tensorgame builds and runs with (Debian 12 / Ubuntu 24.04), as
# root or through sudo. Used by users' first run and by CI (.ci/run).
#   deploy/install_deps.sh           build and run dependencies
#   deploy/install_deps.sh --test    also what the tests use (netns, Slurm)
set -euo pipefail
PKGS=(build-essential pkg-config make
    libzmq3-dev libczmq-dev libsodium-dev protobuf-c-compiler libprotobuf-c-dev
    libhdf5-dev hdf5-tools libopenblas-dev libyaml-dev libjansson-dev libisal-dev libcmocka-dev
    python3 python3-numpy python3-h5py python3-venv python3-pip
    openssh-client procps iproute2)
TEST_PKGS=(slurm-wlm munge)
[ "${1:-}" = "--test" ] && PKGS+=("${TEST_PKGS[@]}")
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${PKGS[@]}"
