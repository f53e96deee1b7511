"""The command line as a user meets it: fast top-level help, examples and defaults, exit codes, pipes."""

import subprocess
import sys
from pathlib import Path

import pytest

from synco.cli import build_parser, main
from synco.commands import COMMANDS

ROOT = Path(__file__).resolve().parents[1]


def test_top_level_help_and_version_import_no_command_and_no_torch():
    """`synco --help` answers without importing PyTorch (what made it take seconds)."""
    code = ("import sys\nfrom synco.cli import main\nfor argv in (['--help'], ['--version']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "assert not [m for m in sys.modules if m.startswith('synco.commands.')], 'a command imported'\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "exit codes:" in done.stdout and "143 SIGTERM" in done.stdout
    assert all(name in done.stdout for name in COMMANDS)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_has_an_example_exit_codes_and_defaults(command, capsys):
    with pytest.raises(SystemExit) as caught:
        main([command, "--help"])
    assert caught.value.code == 0
    text = capsys.readouterr().out
    assert f"example:\n  synco {command}" in text and "exit codes:" in text
    if command == "analyze":
        assert "(default: 10)" in text  # options with a value show it


def test_nested_help_shows_defaults_too(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "steps", "--help"])
    assert "(default: " in capsys.readouterr().out


def test_recipe_commands_share_their_arguments():
    for command in ("pretrain", "continual"):
        actions = {a.dest for a in build_parser(command)._subparsers._group_actions[0].choices[command]._actions}
        assert {"recipe", "overrides", "resume", "device"} <= actions


def test_device_sets_the_accelerator(tmp_path, capsys, monkeypatch):
    from synco.commands.common import load_recipe

    args = build_parser("pretrain").parse_args(["pretrain", "configs/pretrain/cifar10/synco.yaml", "--device", "gpu"])
    monkeypatch.chdir(ROOT)
    assert load_recipe(args).trainer.accelerator == "cuda"


def test_output_piped_into_head_ends_quietly():
    """`synco config | head -1`: the reader closes the pipe; no 'Broken pipe' traceback, exit code 0."""
    process = subprocess.Popen([sys.executable, "-m", "synco.cli", "config"], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    first = process.stdout.readline()
    process.stdout.close()
    err = process.stderr.read().decode()
    process.wait(timeout=60)
    assert first.startswith(b"# Configuration reference")
    assert process.returncode == 0 and "Broken pipe" not in err and "Traceback" not in err, err
