"""The SLURM tests' fixture where the one-node SLURM cannot run: skipped with what to install, failed under CI."""
from __future__ import annotations

import pytest

import slurm_node


@pytest.fixture
def fake_path(tmp_path):
    """A PATH folder holding every program the one-node SLURM needs (as empty executables)."""
    for tool in slurm_node.TOOLS:
        (tmp_path / tool).write_text("#!/bin/sh\n")
        (tmp_path / tool).chmod(0o755)
    return tmp_path


def test_every_program_present_as_root_starts(fake_path):
    assert slurm_node.missing_reason(str(fake_path), is_root=True) is None
    slurm_node.require(str(fake_path), is_root=True, environ={"CI": "true"})


@pytest.mark.parametrize("absent", ["munged", "slurmctld"])
def test_a_missing_program_is_named_with_the_packages_to_install(fake_path, absent):
    (fake_path / absent).unlink()
    reason = slurm_node.missing_reason(str(fake_path), is_root=True)
    assert reason.startswith(f"the one-node SLURM needs {absent}: ")
    assert "apt-get install -y slurm-wlm slurmdbd munge mariadb-server" in reason


def test_not_root_says_so(fake_path):
    assert "root" in slurm_node.missing_reason(str(fake_path), is_root=False)


@pytest.mark.parametrize("ci", ["", "false", "0"])
def test_outside_ci_a_missing_slurm_skips_with_the_reason(tmp_path, ci):
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y slurm-wlm"):
        slurm_node.require(str(tmp_path), is_root=True, environ={"CI": ci})


@pytest.mark.parametrize("ci", ["true", "True", "1"])
def test_under_ci_a_missing_slurm_fails(tmp_path, ci):
    with pytest.raises(pytest.fail.Exception, match="CI=true and the one-node SLURM needs munged"):
        slurm_node.require(str(tmp_path), is_root=True, environ={"CI": ci})


def test_under_ci_not_being_root_fails(fake_path):
    with pytest.raises(pytest.fail.Exception, match="run the SLURM tests as root"):
        slurm_node.require(str(fake_path), is_root=False, environ={"CI": "true"})
