"""The ``syndicate`` command: the parser, ``main`` and the exit codes; the commands live beside it.

Global options (``--config``, ``--no-progress``) are accepted before or after any subcommand. Long
work shows a progress bar with counts on stderr when it is a terminal; stdout stays one result per
line. Exit codes are the same for every command (:data:`EXIT_CODES`).

One module per command group, each imported only when one of its commands runs (:func:`_command`):
:mod:`~worker.cli.launch` (``up``, ``worker``, ``beat``, ``web``, ``monitor`` and the bundled Redis,
with :mod:`~worker.cli.ports`, :mod:`~worker.cli.monitor` and :mod:`~worker.cli.activity`),
:mod:`~worker.cli.admin` (``check-config``, ``migrate``, ``reload``, ``status``),
:mod:`~worker.cli.health`,
:mod:`~worker.cli.crawl` (``scrape``, ``crawl``, ``feeds build``), :mod:`~worker.cli.share`,
:mod:`~worker.cli.story`, :mod:`~worker.cli.operate` (``retry``, ``source``, ``endpoint``), over
:mod:`~worker.cli.common` (loading the config into the runtime, progress bars) and
:mod:`~worker.cli.db` (migrating the database, syncing the sources).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import importlib.metadata
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from config import ConfigError
from config.settings import SettingsError, load_settings
from worker.errors import SyndicateError, Unreachable

EXIT_OK = 0


EXIT_ERROR = 1


EXIT_USAGE = 2


EXIT_CONFIG = 3


EXIT_UNREACHABLE = 4


EXIT_INTERRUPTED = 130


EXIT_CLOSED_PIPE = 141


# Printed in `syndicate --help` and listed in the README's "CLI" section (a test compares them).
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (EXIT_OK, "ok"),
    (
        EXIT_ERROR,
        "the work failed: a page, crawl or share failed, or an article/share/story id is not there "
        "(or a story merge or split that cannot be done)",
    ),
    (EXIT_USAGE, "usage: bad arguments, or a source/endpoint name that is not in the config"),
    (EXIT_CONFIG, "the config file or the environment settings are invalid (every problem is printed)"),
    (EXIT_UNREACHABLE, "Redis or the database is unreachable (nothing was changed; try again later)"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C)"),
    (EXIT_CLOSED_PIPE, "stdout was closed early (e.g. piped into head): the command stops quietly"),
)


def redacted(url: str) -> str:
    """``url`` with any password replaced, fit for a message."""
    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname or ''}" + (
            f":{parts.port}" if parts.port else ""
        )
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def flush_stdout() -> None:
    """Flush now, so a reader that went away is seen here (as BrokenPipeError), not at interpreter exit."""
    sys.stdout.flush()


DESCRIPTION = """\
Gather partner articles, publish them as feeds and share them: run the whole system (up) or one
part (worker, beat, web, monitor), and the operator commands.

Global options (--config, --no-progress) go before or after any subcommand:
`syndicate status --config my.yaml` is `syndicate --config my.yaml status`. Long work draws a
progress bar with counts on stderr when it is a terminal; stdout stays one result per line."""


CONFIG_HELP = "config file (default: $SYNDICATE_CONFIG or config/syndicate.yaml)"


# What `syndicate COMMAND --help` opens with, kept here (not read from the commands' docstrings) so
# that the parser does not import the command modules.
DESCRIPTIONS: dict[str, str] = {
    "cmd_check_config": "Validate a config file and print every problem with its key path.",
    "cmd_migrate": "Apply database migrations and sync sources from the config.",
    "cmd_scrape": """\
    Normalize pages now (fetched URLs and saved files); print one article JSON object per line.

    A page that fails prints ``{"url": ..., "error": ...}`` on its line (and the reason on stderr) and the
    others go on; the exit status is 1 when any page failed.""",
    "cmd_crawl": (
        "Enqueue one crawl of a source now (or run the whole pipeline in this process with --inline)."
    ),
    "cmd_feeds_build": "Render every configured feed now, in this process.",
    "cmd_status": "Print sources, articles, feeds and the share outbox backlog.",
    "cmd_reload": """\
    Tell every worker, beat and web process to re-read the config file now, and wait for them.

    Each process also follows the file by itself (within seconds of a change) and on SIGHUP; this
    checks the file first, asks them all through Redis, and prints the version each one runs. An
    invalid file is kept out: the processes keep their last good config (exit code 3).""",
    "cmd_share_preview": "Print exactly what each endpoint would receive for an article; nothing is sent.",
    "cmd_share_list": "List the latest shares: status, attempts, where the post landed, why one failed.",
    "cmd_share_send": "Share an article to one endpoint on purpose, even if it is back catalogue.",
    "cmd_share_retry": (
        "Put a failed or uncertain share back in the outbox (Redis checked first: nothing half done)."
    ),
    "cmd_share_mark_sent": "Record that an uncertain share did reach the network (you checked).",
    "cmd_story_match": """\
    Decide whether pairs of articles report the same story: JSON lines in, JSON lines out.

    Each stdin line is ``{"a": ARTICLE, "b": ARTICLE}`` (articles as `syndicate scrape` prints them:
    ``url``, ``title``, ``content_text``, ``published``, ``language``); each gets one line on stdout,
    ``{"same": true|false, "score": 0..1}``. A bad line (not UTF-8, not JSON, not ``{"a", "b"}``, an
    article without title and text or with a field of the wrong type) gets ``{"line": N, "error": ...}``
    in its place and one line ``line N: ...`` on stderr, and the others go on; blank lines are skipped.
    Exit status 0 when every line was answered, 1 when any line failed. The model is loaded once; lines
    are decided in batches, each distinct article's features computed once, the batch's embeddings
    shared among the cores.""",
    "cmd_story_list": (
        "List the newest stories (last changed first), each with its versions, the main version first."
    ),
    "cmd_story_show": "Show one story: each version with its role, source, language, published date and URL.",
    "cmd_story_merge": (
        "Merge story B into story A: B's versions join A (A keeps its feed entry), B is deleted."
    ),
    "cmd_story_split": (
        "Take an article out of its story into a new story of its own; it never rejoins that story."
    ),
    "cmd_endpoint": "Enable or disable an endpoint (a disabled endpoint keeps its pending shares).",
    "cmd_retry": """\
    Retry failed work: shares by id, by endpoint or all failed ones; failed articles by id or all.

    A share goes back to pending and is enqueued; an article goes back to pending with its attempts
    cleared and ``process_article`` is enqueued. Bulk selections (``--endpoint``, ``--all-failed``)
    take failed shares only: an ``uncertain`` share may have been posted, so it is retried by id or
    with ``--uncertain``. Redis is checked first, so nothing is reset that cannot be enqueued.""",
    "cmd_source": "Pause or resume a source: a paused source is not crawled by beat nor by a crawl task.",
    "cmd_health": """\
    Exit 0 when one part is healthy, 1 when not: for container healthchecks (compose, Kubernetes).

    ``worker``: a worker node on this machine (node name ``...@<hostname>``) wrote its heartbeat to
    Redis within 30 s. ``beat``: the deployment's beat leader did (a standby beat is healthy while the
    leader beats). ``web``: this machine's web process answers ``/healthz?scope=web`` (its database
    and Redis), which does not fail because a worker elsewhere is down.""",
    "cmd_worker": "Run a Celery worker consuming every Syndicate queue.",
    "cmd_beat": "Run Celery beat with one schedule entry per source at its own interval.",
    "cmd_web": "Serve the HTTP app (feeds, ingest API, status, demo site).",
    "cmd_monitor": "Run Flower, the Celery monitor.",
    "cmd_up": """\
    Run everything: Redis (bundled unless REDIS_URL), worker, beat, web and Flower; Ctrl-C stops all.

    Flower is optional: with ``--no-monitor``, or when its port is taken (a warning says so), the
    rest runs without it, and Flower stopping later does not stop the rest.""",
}


def _global_options(*, in_subcommand: bool) -> argparse.ArgumentParser:
    """The options every (sub)command takes; after a subcommand they default to SUPPRESS, so a
    value given before the subcommand is not reset by the subcommand's own default."""
    parent = argparse.ArgumentParser(add_help=False)
    default: Any = argparse.SUPPRESS if in_subcommand else None
    parent.add_argument("--config", metavar="FILE", default=default, help=CONFIG_HELP)
    parent.add_argument(
        "--no-progress",
        action="store_true",
        default=argparse.SUPPRESS if in_subcommand else False,
        help="no progress bars, even on a terminal (they are drawn on stderr only when it is one)",
    )
    return parent


def _epilog() -> str:
    lines = ["exit codes (every command):"]
    lines += [f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES]
    return "\n".join(lines)


class _Commands:
    """Adds subcommands that take the global options, with their help as their --help description."""

    def __init__(self, parser: argparse.ArgumentParser, dest: str, title: str) -> None:
        self.sub = parser.add_subparsers(dest=dest, required=True, metavar="COMMAND", help=title)
        self.parents = [_global_options(in_subcommand=True)]

    def add(self, name: str, help: str, description: str | None = None) -> argparse.ArgumentParser:
        """A subcommand ``name``; ``description`` (default: ``help``) opens its ``--help``."""
        return self.sub.add_parser(
            name,
            help=help,
            description=(description or help[:1].upper() + help[1:] + ".").replace("``", "`"),
            parents=self.parents,
            epilog="exit codes: see `syndicate --help`",
        )


def _version() -> str:
    """The installed distribution's version (pyproject.toml), or ``unknown`` when run from a bare tree."""
    try:
        return importlib.metadata.version("syndicate")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _at_least_one(value: str) -> int:
    """An argparse type: a whole number of at least 1 (a batch of 0 lines would read nothing)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{number} is less than 1")
    return number


def _days(value: str) -> float:
    """An argparse type: a finite number of days, 0 or more."""
    try:
        days = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0 <= days < float("inf"):  # NaN fails too
        raise argparse.ArgumentTypeError(f"{value} is not a finite number of days, 0 or more")
    return days


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="syndicate",
        description=DESCRIPTION,
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_global_options(in_subcommand=False)],
    )
    parser.add_argument("--version", action="version", version=f"syndicate {_version()}")
    cmds = _Commands(
        parser, "command", "one of the commands below; `syndicate COMMAND --help` for its options"
    )

    p = cmds.add("up", "run everything on the embedded default (Ctrl-C stops all)", DESCRIPTIONS["cmd_up"])
    p.add_argument("--no-monitor", action="store_true", help="do not start Flower")
    p.add_argument(
        "--verbose",
        action="store_true",
        help="show every part's full log here too (it always goes to $SYNDICATE_VAR_DIR/log/)",
    )
    p.set_defaults(func=_command("launch:cmd_up"))
    p = cmds.add("worker", "run a Celery worker", DESCRIPTIONS["cmd_worker"])
    p.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help="worker processes (default: $SYNDICATE_WORKER_CONCURRENCY)",
    )
    p.add_argument("--hostname", metavar="NAME", help="the worker's node name (Celery -n), e.g. worker1@%%h")
    p.add_argument("--events", action="store_true", help="send task events from the start (for Flower)")
    p.set_defaults(func=_command("launch:cmd_worker"))
    cmds.add("beat", "run Celery beat (per-source schedules)", DESCRIPTIONS["cmd_beat"]).set_defaults(
        func=_command("launch:cmd_beat")
    )
    cmds.add("web", "serve feeds, the ingest API and the status page", DESCRIPTIONS["cmd_web"]).set_defaults(
        func=_command("launch:cmd_web")
    )
    cmds.add("monitor", "run Flower", DESCRIPTIONS["cmd_monitor"]).set_defaults(
        func=_command("launch:cmd_monitor")
    )
    p = cmds.add(
        "health", "exit 0 if this machine's worker, beat or web is healthy", DESCRIPTIONS["cmd_health"]
    )
    p.add_argument("part", choices=("worker", "beat", "web"), help="which part to check")
    p.add_argument(
        "--timeout", type=float, default=5.0, metavar="S", help="web: seconds to wait for /healthz"
    )
    p.set_defaults(func=_command("health:cmd_health"))
    cmds.add("migrate", "apply database migrations", DESCRIPTIONS["cmd_migrate"]).set_defaults(
        func=_command("admin:cmd_migrate")
    )

    p = cmds.add(
        "scrape",
        "fetch and normalize pages now (URLs or saved files); print one JSON article per line",
        DESCRIPTIONS["cmd_scrape"],
    )
    p.add_argument("urls", nargs="*", metavar="URL", help="pages to fetch and normalize")
    p.add_argument(
        "--saved",
        nargs=2,
        action="append",
        metavar=("FILE", "URL"),
        help="a saved page and the URL it came from (repeatable; nothing is fetched)",
    )
    p.add_argument("--content-type", help="Content-Type of the saved files (charset), if known")
    p.add_argument("--full", action="store_true", help="include content_html")
    p.set_defaults(func=_command("crawl:cmd_scrape"))

    p = cmds.add("crawl", "enqueue one crawl of a source now", DESCRIPTIONS["cmd_crawl"])
    p.add_argument("source", help="the source's name in the config")
    p.add_argument("--inline", action="store_true", help="run the whole pipeline in this process, no Celery")
    p.set_defaults(func=_command("crawl:cmd_crawl"))

    p = cmds.add("feeds", "feed commands: build")
    feeds = _Commands(p, "feeds_command", "what to do with the feeds")
    feeds.add("build", "render all feeds now", DESCRIPTIONS["cmd_feeds_build"]).set_defaults(
        func=_command("crawl:cmd_feeds_build")
    )

    p = cmds.add(
        "check-config", "validate the config and print every problem", DESCRIPTIONS["cmd_check_config"]
    )
    p.add_argument(
        "file", nargs="?", help="the config file to check (default: --config, then $SYNDICATE_CONFIG)"
    )
    p.add_argument(
        "--no-secrets",
        action="store_true",
        help="an unset ${ENV_VAR} is a warning, not an error (check a config in CI without its secrets)",
    )
    p.set_defaults(func=_command("admin:cmd_check_config"))

    p = cmds.add("share", "share commands: preview, list, send, retry, mark-sent")
    share = _Commands(p, "share_command", "what to do with shares")
    q = share.add(
        "preview", "print what each endpoint would receive for an article", DESCRIPTIONS["cmd_share_preview"]
    )
    q.add_argument("article", help="article id or URL")
    q.add_argument("--endpoint", metavar="NAME", help="only this endpoint")
    q.add_argument("--json", action="store_true", help="print the previews as one JSON document")
    q.set_defaults(func=_command("share:cmd_share_preview"))
    q = share.add(
        "list", "the latest shares, where each post landed and why one failed", DESCRIPTIONS["cmd_share_list"]
    )
    q.add_argument("--endpoint", metavar="NAME", help="only this endpoint's shares")
    q.add_argument(
        "--status",
        choices=["pending", "sending", "sent", "failed", "uncertain"],
        help="only shares in this state",
    )
    q.add_argument(
        "--limit", type=int, default=20, metavar="N", help="at most N shares, newest first (default 20)"
    )
    q.add_argument("--json", action="store_true", help="print the shares as one JSON document")
    q.set_defaults(func=_command("share:cmd_share_list"))
    q = share.add(
        "send",
        "share an article to an endpoint on purpose (even back catalogue)",
        DESCRIPTIONS["cmd_share_send"],
    )
    q.add_argument("article", help="article id or URL")
    q.add_argument("--endpoint", required=True, metavar="NAME", help="the endpoint to share to")
    q.add_argument("--inline", action="store_true", help="send from this process instead of a worker")
    q.set_defaults(func=_command("share:cmd_share_send"))
    q = share.add(
        "retry", "put a failed or uncertain share back in the outbox", DESCRIPTIONS["cmd_share_retry"]
    )
    q.add_argument("share", type=int, help="the share's id (see `syndicate share list`)")
    q.set_defaults(func=_command("share:cmd_share_retry"))
    q = share.add(
        "mark-sent",
        "record that an uncertain share did reach the network",
        DESCRIPTIONS["cmd_share_mark_sent"],
    )
    q.add_argument("share", type=int, help="the share's id (see `syndicate share list`)")
    q.add_argument("--url", help="the post's URL")
    q.set_defaults(func=_command("share:cmd_share_mark_sent"))

    p = cmds.add(
        "retry", "retry failed shares and articles (by id, by endpoint, or all)", DESCRIPTIONS["cmd_retry"]
    )
    p.add_argument(
        "--share", type=int, action="append", metavar="ID", help="a failed or uncertain share (repeatable)"
    )
    p.add_argument("--article", type=int, action="append", metavar="ID", help="a failed article (repeatable)")
    p.add_argument("--endpoint", metavar="NAME", help="every failed share of this endpoint")
    p.add_argument("--all-failed", action="store_true", help="every failed share and every failed article")
    p.add_argument(
        "--uncertain",
        action="store_true",
        help="with --endpoint/--all-failed, uncertain shares too (may post twice)",
    )
    p.add_argument("--dry-run", action="store_true", help="list what would be retried; change nothing")
    p.set_defaults(func=_command("operate:cmd_retry"))

    p = cmds.add("source", "pause or resume a source (a paused source is not crawled)")
    source = _Commands(p, "source_command", "what to do with the source")
    q = source.add(
        "pause",
        "stop crawling a source (beat and crawl tasks skip it) until resumed",
        DESCRIPTIONS["cmd_source"],
    )
    q.add_argument("name", help="the source's name in the config")
    q.add_argument("--reason", help="why, shown by `syndicate status` and the status page")
    q.set_defaults(func=_command("operate:cmd_source"))
    q = source.add("resume", "crawl a paused source again on its schedule", DESCRIPTIONS["cmd_source"])
    q.add_argument("name", help="the source's name in the config")
    q.set_defaults(func=_command("operate:cmd_source"))

    p = cmds.add("story", "story commands: match, list, show, merge, split")
    story = _Commands(p, "story_command", "what to do with stories")
    q = story.add(
        "match",
        "decide whether pairs of articles (JSON lines on stdin) are one story",
        DESCRIPTIONS["cmd_story_match"],
    )
    q.add_argument(
        "--window-days",
        type=_days,
        default=3.0,
        metavar="DAYS",
        help="articles published further apart are never one story (default 3)",
    )
    q.add_argument(
        "--batch", type=_at_least_one, default=64, metavar="N", help="lines decided together (default 64)"
    )
    q.set_defaults(func=_command("story:cmd_story_match"))
    q = story.add(
        "list", "the newest stories with their versions, the main one first", DESCRIPTIONS["cmd_story_list"]
    )
    q.add_argument(
        "--limit", type=int, default=20, metavar="N", help="at most N stories, newest first (default 20)"
    )
    q.add_argument(
        "--json", action="store_true", help='one JSON object per story: {"id", "title", "articles"}'
    )
    q.set_defaults(func=_command("story:cmd_story_list"))
    q = story.add(
        "show", "one story's versions: role, source, language, published, URL", DESCRIPTIONS["cmd_story_show"]
    )
    q.add_argument("story", type=int, help="the story's id (see `syndicate story list`)")
    q.add_argument("--json", action="store_true", help="print the story as one JSON document")
    q.set_defaults(func=_command("story:cmd_story_show"))
    q = story.add(
        "merge", "merge story B into story A (a wrong split by the matcher)", DESCRIPTIONS["cmd_story_merge"]
    )
    q.add_argument("story", type=int, help="story A, which stays (its feed entry too)")
    q.add_argument("other", type=int, help="story B, whose versions join A")
    q.set_defaults(func=_command("story:cmd_story_merge"))
    q = story.add(
        "split",
        "take an article out of its story (a wrong merge by the matcher)",
        DESCRIPTIONS["cmd_story_split"],
    )
    q.add_argument("article", type=int, help="the article's id (see `syndicate story show`)")
    q.set_defaults(func=_command("story:cmd_story_split"))

    p = cmds.add("endpoint", "enable or disable a share endpoint")
    endpoint = _Commands(p, "endpoint_command", "what to do with the endpoint")
    for action in ("enable", "disable"):
        q = endpoint.add(action, f"{action} an endpoint", DESCRIPTIONS["cmd_endpoint"])
        q.add_argument("name", help="the endpoint's name in the config")
        q.set_defaults(func=_command("operate:cmd_endpoint"))

    p = cmds.add(
        "reload", "make every worker, beat and web process re-read the config now", DESCRIPTIONS["cmd_reload"]
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="how long to wait for every process to report the file's version (default 15)",
    )
    p.set_defaults(func=_command("admin:cmd_reload"))

    p = cmds.add("status", "sources, articles, feeds and the share outbox", DESCRIPTIONS["cmd_status"])
    p.add_argument("--json", action="store_true", help="print the snapshot as one JSON document")
    p.set_defaults(func=_command("admin:cmd_status"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``syndicate`` console script; returns one of :data:`EXIT_CODES`."""
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # --help (0) or a usage error (2), already printed by argparse
            flush_stdout()
            return int(exc.code or 0)
        logging.basicConfig(
            level=os.environ.get("SYNDICATE_LOG_LEVEL", "INFO"), format="%(levelname)s %(name)s: %(message)s"
        )
        logging.getLogger("alembic").setLevel(logging.WARNING)
        code = _run(args)
        flush_stdout()
        return code
    except BrokenPipeError:
        return _stdout_closed()
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _run(args: argparse.Namespace) -> int:
    """Run the subcommand, turning the errors an operator can act on into one message and an exit code."""
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"config error in {exc.path}:" if exc.path else "config error:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_CONFIG
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except Unreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except SyndicateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        raise
    except Exception as exc:
        message = _unreachable_message(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return EXIT_UNREACHABLE


def _stdout_closed() -> int:
    """The reader of stdout went away (``| head``): stop quietly with :data:`EXIT_CLOSED_PIPE`.

    What is still buffered can never be written; pointing stdout at /dev/null keeps Python from
    printing "Exception ignored ... BrokenPipeError" when it flushes at exit.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no file descriptor behind sys.stdout (embedded, captured)
        pass
    return EXIT_CLOSED_PIPE


def _unreachable_message(exc: BaseException) -> str | None:
    """One line for "the database or Redis is down", or None for any other error (a real bug)."""
    # Imported here, not at the top (+270 ms CPU on every start, --help included): only a failed
    # command gets here, and by then the command has loaded them.
    import sqlalchemy.exc  # noqa: PLC0415  (see above)

    if isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
        original = str(getattr(exc, "orig", exc)).strip().splitlines()
        reason = original[0] if original else type(exc).__name__
        try:
            url = redacted(load_settings().effective_database_url)
        except SettingsError:
            url = "the database"
        return f"database {url} is unreachable: {reason}"
    import kombu.exceptions  # noqa: PLC0415  (as sqlalchemy above)
    import redis  # noqa: PLC0415  (as sqlalchemy above)

    if isinstance(exc, kombu.exceptions.OperationalError | redis.exceptions.ConnectionError):
        return f"Redis is unreachable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    return None


@functools.cache
def _command(target: str) -> Callable[[argparse.Namespace], int]:
    """The command ``"module:function"`` of this package, imported from its module when it runs."""
    module, _, name = target.partition(":")

    def run(args: argparse.Namespace) -> int:
        # Imported here, not at the top: the command modules load Celery, FastAPI, SQLAlchemy and the
        # pipeline, which would multiply the start-up time of `syndicate --help` and `syndicate health`.
        function = getattr(importlib.import_module(f"worker.cli.{module}"), name)
        return int(function(args) or 0)

    run.__name__ = run.__qualname__ = name
    return run
