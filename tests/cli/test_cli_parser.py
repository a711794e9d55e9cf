"""The ``syndicate`` parser itself: help on every subcommand and option, global options accepted after
any (nested) subcommand, and the exit codes, which ``--help`` and the README list alike."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker.cli import EXIT_CODES, build_parser, main

README = Path(__file__).resolve().parents[2] / "README.md"


def walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every parser with its command path: the top one, then each subcommand, depth first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, (*path, name))


def leaves(parser: argparse.ArgumentParser) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """The runnable commands: parsers without subcommands of their own."""
    return [
        (path, p)
        for path, p in walk(parser)
        if path and not any(isinstance(a, argparse._SubParsersAction) for a in p._actions)
    ]


def required_args(parser: argparse.ArgumentParser) -> list[str]:
    """A placeholder for each required positional or option, so that parsing succeeds."""
    out: list[str] = []
    for action in parser._actions:
        if not action.option_strings and action.nargs in (None, 1) and action.dest != "help":
            out.append(str(next(iter(action.choices))) if action.choices else "1")
        elif action.option_strings and action.required:
            out += [action.option_strings[0], "1"]
    return out


def test_every_parser_and_every_option_has_help() -> None:
    parsers = list(walk(build_parser()))
    assert len(parsers) >= 25  # every command and nested command is walked
    for path, parser in parsers:
        assert parser.description and parser.description.strip(), f"no description: {path}"
        for action in parser._actions:
            assert action.help and action.help.strip() and action.help != argparse.SUPPRESS, (path, action)
            if isinstance(action, argparse._SubParsersAction):
                helps = {a.dest: a.help for a in action._choices_actions}
                assert set(helps) == set(action.choices), path
                assert all(h and h.strip() for h in helps.values()), (path, helps)


@pytest.mark.parametrize("path", [" ".join(p) for p, _ in leaves(build_parser())])
def test_global_options_after_any_subcommand(path: str) -> None:
    parser = build_parser()
    command = path.split()
    sub = dict(leaves(parser))[tuple(command)]
    rest = required_args(sub)
    before = parser.parse_args(["--config", "a.yaml", *command, *rest])
    after = parser.parse_args([*command, *rest, "--config", "a.yaml", "--no-progress"])
    neither = parser.parse_args([*command, *rest])
    assert before.config == after.config == "a.yaml"
    assert after.no_progress is True and before.no_progress is False
    assert neither.config is None and neither.no_progress is False
    # In the middle of a nested command too, and the later value wins.
    if len(command) > 1:
        middle = parser.parse_args([command[0], "--config", "b.yaml", *command[1:], *rest])
        assert middle.config == "b.yaml"
    both = parser.parse_args(["--config", "a.yaml", *command, *rest, "--config", "c.yaml"])
    assert both.config == "c.yaml"
    assert before.func is after.func


def test_subcommand_help_shows_descriptions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["share", "list", "--help"]) == 0
    out = capsys.readouterr().out
    assert "List the latest shares" in out and "only shares in this state" in out and "--config FILE" in out
    assert main(["source", "pause", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--reason REASON" in out and "shown by `syndicate status`" in out


def test_exit_codes_in_help_and_readme(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for code, meaning in EXIT_CODES:
        assert re.search(rf"^\s*{code}\s+{re.escape(meaning)}$", out, re.M), (code, out)
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## CLI\n", 1)[1].split("\n## ", 1)[0]
    listed = {int(m.group(1)) for m in re.finditer(r"^\| `(\d+)` \|", section, re.M)}
    assert listed == {code for code, _ in EXIT_CODES}


def test_usage_errors_exit_2_without_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["status", "--bogus"]) == 2
    assert main(["retry"]) == 2  # nothing selected
    assert "nothing selected" in capsys.readouterr().err
    result = subprocess.run(
        [sys.executable, "-m", "worker.cli", "share", "list", "--limit", "many"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "invalid int value" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_config_exits_3_for_every_command(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: [{name: Bad Name, kind: listing}]\n", encoding="utf-8")
    for command in (["check-config"], ["status"], ["feeds", "build"], ["source", "pause", "x"]):
        result = subprocess.run(
            [sys.executable, "-m", "worker.cli", *command, "--config", str(bad)],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"},
        )
        assert result.returncode == 3, (command, result.stderr)
        assert "sources[0].name" in result.stderr and "Traceback" not in result.stderr
