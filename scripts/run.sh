#!/usr/bin/env bash
# Install nnunetv2_mamba into a cached virtualenv (idempotent) and run one job in it.
#   bash scripts/run.sh demo [ARGS...]   the synthetic-cardiac demo (plan, train, predict, report)
#   bash scripts/run.sh test [ARGS...]   the test suite (pytest ARGS), one pytest-xdist worker per core (at most 4;
#                                        -n N in ARGS overrides), whole files per worker; as root with apt-get, first installs the Debian
#                                        packages of the SLURM tests' one-node cluster where dpkg lacks them
#   bash scripts/run.sh shell            print the activate line for the virtualenv
# Environment: nnUNet_mamba_venv (default ~/.cache/nnunetv2_mamba/venv), PYTHON (default python3).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${nnUNet_mamba_venv:-$HOME/.cache/nnunetv2_mamba/venv}"
job="${1:-}"; shift || true

install() {
    if [ ! -x "$venv/bin/python" ]; then
        "${PYTHON:-python3}" -m venv "$venv"
    fi
    local pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
    local stamp="$venv/.nnunetv2_mamba-$(cat "$repo/pyproject.toml" "$repo/scripts/run.sh" | sha1sum | cut -c1-12)-$1"
    [ -f "$stamp" ] && { "${pip[@]}" --no-deps -e "$repo" >/dev/null; return; }
    echo "[run.sh] installing into $venv (first run takes a few minutes)" >&2
    "${pip[@]}" --upgrade pip wheel setuptools ninja
    # torch 2.14.1 + torchvision 0.29.1: a matching pair (PyPI's torchvision breaks beside other builds).
    "${pip[@]}" torch==2.14.1 torchvision==0.29.1
    "${pip[@]}" -e "$repo[test]"
    if [ "$1" = test ]; then
        # mamba-ssm without its CUDA kernels (no GPU here), so the tests can compare against its reference.
        MAMBA_FORCE_BUILD=TRUE CAUSAL_CONV1D_FORCE_BUILD=TRUE MAMBA_SKIP_CUDA_BUILD=TRUE \
        CAUSAL_CONV1D_SKIP_CUDA_BUILD=TRUE "${pip[@]}" --no-build-isolation --no-deps \
            mamba-ssm==2.3.2.post1 causal-conv1d==1.7.0 \
            && "${pip[@]}" tilelang==0.1.8 'apache-tvm-ffi<=0.1.9' 'quack-kernels>=0.3.4' transformers \
            || echo "[run.sh] mamba-ssm could not be installed; tests that need it will skip" >&2
    fi
    touch "$stamp"
}

# tests/test_executors.py and the benchmark's slurm runs start a one-node SLURM with accounting
# (scripts/slurm_single_node.sh). Without root or apt-get those tests skip and say what to install (fail under CI=true).
slurm_packages=(slurm-wlm slurmdbd munge mariadb-server)
install_slurm() {
    dpkg -s "${slurm_packages[@]}" >/dev/null 2>&1 && return
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 0
    echo "[run.sh] apt-get install ${slurm_packages[*]} (the SLURM tests' one-node cluster)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${slurm_packages[@]}" >/dev/null
}

case "$job" in
    demo) install demo; exec "$venv/bin/nnunetv2_mamba" demo "$@" ;;
    test) install_slurm; install test; cd "$repo"
          workers="$(nproc)"; [ "$workers" -gt 4 ] && workers=4
          exec "$venv/bin/python" -m pytest -n "$workers" --dist loadfile --no-loadscope-reorder "$@" ;;
    shell) install demo; echo "source $venv/bin/activate" ;;
    *) echo "usage: bash scripts/run.sh {demo|test|shell} [ARGS...]" >&2; exit 2 ;;
esac
