"""The README's own examples, as a new user pastes and types them, so the docs cannot drift.

* Every ```yaml fence is a config that ``syndicate check-config`` accepts (with a placeholder value
  for each ``${VAR}`` it references). An HTML comment just before a fence says what it is when it
  is not a whole config: ``<!-- readme-test: add-to FILE -->`` (entries to add to that config's
  lists, as the walkthrough says), ``<!-- readme-test: compose-override -->`` (a docker-compose
  override: valid YAML naming services that ``docker-compose.yml`` has).
* Every ``syndicate ...`` command in the README's tables parses, in its fullest and its shortest
  form (optional ``[...]`` parts in and out, each ``a|b`` alternative), with placeholders such as
  ``NAME`` filled in; a cell's follow-up spans (``/ `beat```, ``/ `disable NAME```) are read as the
  row's command with its last words replaced.
* The "Add your first source and endpoint" walkthrough is run step by step in a copy of the repo's
  config directory: its shell lines (long-running ones only parsed), its YAML added to the file it
  names, against a real Redis and a throwaway SQLite database.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.services import RedisServer
from worker.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
WALKTHROUGH = "## Add your first source and endpoint"
_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w-]*)\n(?P<body>.*?)^(?P=indent)```\n", re.M | re.S)
_MARKER = re.compile(r"<!--\s*readme-test:\s*(?P<what>[^>]*?)\s*-->\s*$")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")
# What a placeholder in a documented command stands for (a new placeholder needs a line here).
PLACEHOLDERS = {
    "URL": "https://partner.example/story",
    "FILE": "page.html",
    "CT": "text/html; charset=utf-8",
    "SOURCE": "demo-cluster",
    "NAME": "demo-file",
    "N": "5",
    "ARTICLE": "1",
    "SHARE": "1",
    "ID": "1",
    "S": "failed",
    "R": "maintenance",
    "TEXT": "maintenance",
    "U": "https://mastodon.social/@news/1",
    "SECONDS": "15",
    "STORY": "1",
    "A": "1",
    "B": "2",
}
# Commands that run until stopped: the walkthrough only parses them.
LONG_RUNNING = {"up", "worker", "beat", "web", "monitor"}


@dataclass(frozen=True)
class Fence:
    """One fenced block: its language, text, first line number, marker and section heading."""

    lang: str
    body: str
    line: int
    marker: str
    section: str

    def __str__(self) -> str:
        return f"README.md line {self.line} ({self.section})"


def fences(text: str | None = None) -> list[Fence]:
    """Every fenced block of the README, with the ``readme-test`` marker on the lines before it."""
    text = README.read_text(encoding="utf-8") if text is None else text
    out = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()]
        preceding = [line for line in before.splitlines() if line.strip()][-1:]
        marker = _MARKER.search(preceding[0]) if preceding else None
        headings = re.findall(r"^#+ .*$", before, re.M)
        indent = match.group("indent")
        body = "".join(line.removeprefix(indent) for line in match.group("body").splitlines(keepends=True))
        out.append(
            Fence(
                lang=match.group("lang"),
                body=body,
                line=before.count("\n") + 1,
                marker=marker.group("what") if marker else "",
                section=headings[-1] if headings else "",
            )
        )
    return out


def placeholder_env(text: str) -> dict[str, str]:
    """A stand-in value for every ``${VAR}`` without a default: a URL for ``*_URL``, else a word."""
    env = {}
    for name, default in _ENV_REF.findall(text):
        if not default:
            env[name] = (
                f"https://hooks.example.org/{name.lower()}" if name.endswith("_URL") else "placeholder"
            )
    return env


def add_entries(path: Path, fragment: dict[str, Any]) -> None:
    """Add a fragment's entries to the config at ``path``: lists are extended, mappings updated."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for key, value in fragment.items():
        if isinstance(value, list):
            data[key] = [*(data.get(key) or []), *value]
        elif isinstance(value, dict):
            data[key] = {**(data.get(key) or {}), **value}
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def check_config(path: Path, *flags: str) -> tuple[int, str]:
    """``syndicate check-config`` in this process: its exit code and what it printed."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["check-config", *flags, str(path)])
    return code, out.getvalue() + err.getvalue()


def parse_error(argv: list[str]) -> str | None:
    """None when the ``syndicate`` parser accepts ``argv``, else what it printed."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            build_parser().parse_args(argv)
        except SystemExit as exc:
            return None if exc.code == 0 else err.getvalue() or f"exit {exc.code}"
    return None


# ---- YAML blocks -----------------------------------------------------------------------------------------


def yaml_fences() -> list[Fence]:
    return [f for f in fences() if f.lang == "yaml"]


def test_readme_has_the_blocks_this_test_reads() -> None:
    blocks = yaml_fences()
    assert len(blocks) >= 4, blocks
    assert any(f.marker.startswith("add-to ") and f.section == WALKTHROUGH for f in blocks)
    endpoints = next(f for f in blocks if "kind: mastodon" in f.body and "kind: teams" in f.body)
    kinds = {e["kind"] for e in yaml.safe_load(endpoints.body)["endpoints"]}
    assert len(kinds) == 12, kinds  # every endpoint kind has its example


@pytest.mark.parametrize("block", yaml_fences(), ids=str)
def test_yaml_block_is_accepted_by_check_config(
    block: Fence, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        data = yaml.safe_load(block.body)
    except yaml.YAMLError as exc:
        pytest.fail(f"{block}: not valid YAML, as pasted: {exc}")
    if block.marker == "compose-override":
        services = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))["services"]
        assert set(data["services"]) <= set(services), block
        return
    for name, value in placeholder_env(block.body).items():
        monkeypatch.setenv(name, value)
    config = tmp_path / "config.yaml"
    if block.marker.startswith("add-to "):
        target = ROOT / block.marker.removeprefix("add-to ")
        # The walkthrough's own copy (config/my.yaml) starts as the example config.
        shutil.copy(target if target.exists() else ROOT / "config" / "syndicate.yaml", config)
        add_entries(config, data)
    else:
        assert not block.marker, f"{block}: unknown readme-test marker {block.marker!r}"
        config.write_text(block.body, encoding="utf-8")
    code, printed = check_config(config)
    assert code == 0, f"{block}: check-config says\n{printed}"
    # In CI, without the secrets: each unset one is a warning with its key path, not an error.
    for name in placeholder_env(block.body):
        monkeypatch.delenv(name)
    code, printed = check_config(config, "--no-secrets")
    assert code == 0, f"{block}: check-config --no-secrets says\n{printed}"
    warned = set(re.findall(r"^warning: \S+: environment variable (\w+) is not set", printed, re.M))
    assert warned == set(placeholder_env(block.body)), printed


# ---- commands in the tables ------------------------------------------------------------------------------


def table_commands(text: str | None = None) -> list[tuple[int, list[str]]]:
    """``(line, spans)`` for each table row whose first cell documents a ``syndicate`` command."""
    text = README.read_text(encoding="utf-8") if text is None else text
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.startswith("| "):
            continue
        first = re.split(r"(?<!\\)\|", line[1:], maxsplit=1)[0]
        spans = [s.replace("\\|", "|") for s in re.findall(r"`([^`]+)`", first)]
        if spans and spans[0].startswith("syndicate "):
            rows.append((number, spans))
    return rows


def _variants(words: list[str]) -> Iterator[list[str]]:
    """The fullest form (every ``[...]`` part in) and the shortest (none), each ``a|b`` alternative."""
    for keep_optional in (True, False):
        out: list[list[str]] = [[]]
        depth = 0
        for word in words:
            opens, closes = word.count("["), word.count("]")
            inside = depth > 0 or opens > 0
            depth += opens - closes
            word = word.strip("[]")
            if inside and not keep_optional:
                continue
            choices = word.split("|")
            out = [[*prefix, choice] for prefix in out for choice in choices]
        yield from out


def _filled(words: list[str]) -> list[str]:
    out = []
    for word in words:
        bare = word.removesuffix("...")
        if re.fullmatch(r"[A-Z][A-Z_]*", bare):
            assert bare in PLACEHOLDERS, f"placeholder {bare} has no value in tests/test_readme.py"
            out.append(PLACEHOLDERS[bare])
        else:
            out.append(word)
    return out


def documented_commands() -> list[tuple[int, str, list[list[str]]]]:
    """Each command a table row documents: ``(line, as written, [argv candidates])``."""
    out = []
    for number, spans in table_commands():
        base = shlex.split(spans[0])
        out.append((number, spans[0], [base[1:]]))
        for span in spans[1:]:
            tail = shlex.split(span)
            if tail[0] == "syndicate":
                out.append((number, span, [tail[1:]]))
            else:  # the row's command with its last words replaced: `endpoint enable NAME` / `disable NAME`
                out.append((number, span, [[*base[1:k], *tail] for k in range(len(base), 0, -1)]))
    return out


def test_readme_tables_document_the_commands() -> None:
    commands = documented_commands()
    assert len(commands) >= 20, commands
    written = " ".join(shown for _, shown, _ in commands)
    for name in ("up", "check-config", "status", "share preview", "source pause", "health"):
        assert f"syndicate {name}" in written


@pytest.mark.parametrize(
    ("line", "shown", "candidates"),
    documented_commands(),
    ids=[f"{n}:{s}" for n, s, _ in documented_commands()],
)
def test_table_command_parses(line: int, shown: str, candidates: list[list[str]]) -> None:
    errors: list[str] = []
    for candidate in candidates:
        forms = [_filled(words) for words in _variants(candidate)]
        problems = [(form, parse_error(form)) for form in forms]
        failed = [(form, error) for form, error in problems if error]
        if not failed:
            return
        errors += [f"  syndicate {' '.join(form)}: {error.strip()}" for form, error in failed]
    pytest.fail(f"README.md line {line}: `{shown}` does not parse:\n" + "\n".join(errors))


def test_command_table_reader_catches_a_wrong_command() -> None:
    """The table reader finds a bad option and a bad follow-up span (so the tests above can fail)."""
    text = "| `syndicate status --jsn` / `share lst` | what |\n| --- | --- |\n"
    rows = table_commands(text)
    assert rows == [(1, ["syndicate status --jsn", "share lst"])]
    assert parse_error(["status", "--jsn"]) and parse_error(["share", "lst"])
    assert [list(v) for v in [_filled(w) for w in _variants(["share", "list", "[--status", "S]"])]] == [
        ["share", "list", "--status", "failed"],
        ["share", "list"],
    ]


# ---- the walkthrough -------------------------------------------------------------------------------------


def walkthrough_fences() -> list[Fence]:
    return [f for f in fences() if f.section == WALKTHROUGH]


def test_walkthrough_runs_as_written(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    redis_server: RedisServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    steps = walkthrough_fences()
    assert any(f.lang == "yaml" for f in steps) and any(f.lang == "sh" for f in steps), steps
    shutil.copytree(
        ROOT / "config", tmp_path / "config", ignore=shutil.ignore_patterns("*.py", "__pycache__")
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'syndicate.db'}")
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("SYNDICATE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("SYNDICATE_CONFIG", raising=False)
    ran: list[str] = []
    outputs: dict[str, str] = {}
    for step in steps:
        if step.lang == "yaml":
            assert step.marker.startswith("add-to "), f"{step}: say which file it goes into"
            add_entries(tmp_path / step.marker.removeprefix("add-to "), yaml.safe_load(step.body))
            continue
        for raw in step.body.splitlines():
            line = raw.split(" #", 1)[0].strip()
            if not line:
                continue
            words = shlex.split(line)
            if words[0] == "export":
                for assignment in words[1:]:
                    name, _, value = assignment.partition("=")
                    monkeypatch.setenv(name, value)
                continue
            while "=" in words[0] and not words[0].startswith("-"):  # VAR=value command
                name, _, value = words.pop(0).partition("=")
                monkeypatch.setenv(name, value)
            if words[0] == "cp":
                shutil.copy(tmp_path / words[1], tmp_path / words[2])
            elif words[0] in ("syndicate", ".venv/bin/syndicate"):
                if words[1] in LONG_RUNNING:
                    assert parse_error(words[1:]) is None, line
                else:
                    code = main(words[1:])
                    printed = capsys.readouterr()
                    assert code == 0, f"{step}: `{line}` exited {code}:\n{printed.out}{printed.err}"
                    outputs[words[1]] = printed.out
            else:
                pytest.fail(f"{step}: the walkthrough test does not know how to run `{line}`")
            ran.append(words[1] if len(words) > 1 else words[0])
    assert "check-config" in ran and "status" in ran and "up" in ran, ran
    # What the walkthrough promises: status lists the new source and endpoint.
    status_lines = [line.strip() for line in outputs["status"].splitlines()]
    assert any(line.startswith("partner-news ") for line in status_lines), outputs["status"]
    assert any(line.startswith("masto ") for line in status_lines), outputs["status"]
