"""The ``nnunetv2_mamba`` command's one convention: ``cli.py`` only dispatches; each subcommand's module (where the
command lives) defines its parser (``add_arguments``) and its entry (``run``), imported only when it runs."""
from __future__ import annotations

import importlib

import pytest

from nnunetv2_mamba.cli import COMMANDS, main


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_module_holds_its_parser_and_entry_and_answers_help(command, capsys):
    module = importlib.import_module(COMMANDS[command][0])
    assert callable(module.add_arguments) and callable(module.run)
    with pytest.raises(SystemExit) as stopped:
        main([command, "--help"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: nnunetv2_mamba {command}")


def test_no_subcommand_prints_every_one_and_fails(capsys):
    assert main([]) == 2
    listed = capsys.readouterr().out
    assert all(command in listed for command in COMMANDS)
