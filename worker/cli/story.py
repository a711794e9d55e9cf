"""Story commands: ``story match``, ``list``, ``show``, ``merge``, ``split``."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from typing import Any

from worker.cli import (
    EXIT_ERROR,
    EXIT_OK,
)
from worker.cli.common import (
    emit,
    load,
    require_redis,
)
from worker.cli.db import prepare_database
from worker.errors import MatchInputError, StoryChangeError
from worker.runtime import get_runtime
from worker.stories.edit import merge, split
from worker.stories.views import recent_stories, story_detail
from worker.tasks import schedule_renders


def cmd_story_match(args: argparse.Namespace) -> int:
    """Decide whether pairs of articles report the same story: JSON lines in, JSON lines out."""
    # Imported here, not at the top: numpy, datasketch and the embedding model cost ~0.3 s to import,
    # which the other story commands (list, show, merge, split) would pay.
    from worker.stories.embed import Embedder  # noqa: PLC0415  (see above)
    from worker.stories.match import MatchConfig, Matcher  # noqa: PLC0415  (see above)

    matcher = Matcher(
        MatchConfig(window_days=args.window_days), embedder=Embedder(threads=os.cpu_count() or 1)
    )
    failed = 0
    # Bytes, decoded line by line: one line that is not UTF-8 is that line's error, not the run's end.
    lines = (item for item in enumerate(sys.stdin.buffer, start=1) if item[1].strip())
    while batch := list(itertools.islice(lines, args.batch)):
        pairs: list[tuple[Any, Any]] = []
        errors: dict[int, str] = {}
        for index, (_, line) in enumerate(batch):
            found = _match_pair(line)
            if isinstance(found, str):
                errors[index] = found
            else:
                pairs.append(found)
        decisions = matcher.decide_many(pairs)
        answers = iter(decisions)
        for index, (number, _) in enumerate(batch):
            answer = errors.get(index) or next(answers)
            if isinstance(answer, str | MatchInputError):
                failed += 1
                emit(f"line {number}: {answer}", err=True)
                emit(json.dumps({"line": number, "error": str(answer)}, ensure_ascii=False))
            else:
                emit(json.dumps({"same": answer.same, "score": answer.score}))
    return EXIT_ERROR if failed else EXIT_OK


def _match_pair(line: bytes) -> tuple[Any, Any] | str:
    """The ``(a, b)`` of one `story match` input line, or why the line is not one."""
    try:
        text = line.decode("utf-8-sig")  # a byte order mark at the start of a file is not an error
    except UnicodeDecodeError as exc:
        return f"not UTF-8: {exc}"
    try:
        pair = json.loads(text)
    except ValueError as exc:
        return f"not JSON: {exc}"
    except RecursionError:
        return "not JSON: nested too deeply"
    if not isinstance(pair, dict) or "a" not in pair or "b" not in pair:
        return 'each line must be a JSON object {"a": ARTICLE, "b": ARTICLE}'
    return pair["a"], pair["b"]


def cmd_story_list(args: argparse.Namespace) -> int:
    """List the newest stories (last changed first), each with its versions, the main version first."""
    settings, config = load(args, secrets=False)
    prepare_database(settings, config)

    with get_runtime().session() as session:
        stories = recent_stories(session, limit=args.limit)
    if args.json:
        for story in stories:
            emit(json.dumps(story, ensure_ascii=False))
        return EXIT_OK
    if not stories:
        print("no stories")
    for story in stories:
        versions = story["articles"]
        print(
            f"{story['id']:>6}  {len(versions)} version{'s' if len(versions) != 1 else ''}  "
            f"{story['title'] or ''}"
        )
        for n, article in enumerate(versions):
            mark = "main" if n == 0 else "    "
            print(
                f"        {mark} {article['id']:>6} {article['source']:<20} "
                f"{article['language'] or '--':<5} {article['url']}"
            )
    return EXIT_OK


def cmd_story_show(args: argparse.Namespace) -> int:
    """Show one story: each version with its role, source, language, published date and URL."""
    settings, config = load(args, secrets=False)
    prepare_database(settings, config)

    with get_runtime().session() as session:
        story = story_detail(session, args.story)
    if story is None:
        print(f"error: no story with id {args.story} (see `syndicate story list`)", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(story, indent=2, ensure_ascii=False))
        return EXIT_OK
    print(f"story {story['id']}: {story['title'] or ''}")
    print(f"  first published {story['first_published'] or 'unknown'}, updated {story['updated_at']}")
    for article in story["articles"]:
        print(
            f"  {article['role'] or '':<8} {article['id']:>6} {article['source']:<20} "
            f"{article['language'] or '--':<5} {(article['published'] or 'undated')[:10]}  {article['url']}"
        )
        print(f"           {article['title'] or ''}")
    return EXIT_OK


def cmd_story_merge(args: argparse.Namespace) -> int:
    """Merge story B into story A: B's versions join A (A keeps its feed entry), B is deleted."""
    settings, config = load(args)
    require_redis(settings)  # the merged feeds are rendered by the workers: nothing half done
    prepare_database(settings, config)

    try:
        changed = merge(get_runtime(), args.story, args.other)
    except (LookupError, StoryChangeError) as exc:
        print(f"error: {exc.args[0] if isinstance(exc, LookupError) else exc}", file=sys.stderr)
        return EXIT_ERROR
    schedule_renders(changed.feeds)
    print(f"story {args.other} merged into story {args.story}; feeds {changed.feeds} re-rendering")
    return EXIT_OK


def cmd_story_split(args: argparse.Namespace) -> int:
    """Take an article out of its story into a new story of its own; it never rejoins that story."""
    settings, config = load(args)
    require_redis(settings)
    prepare_database(settings, config)

    try:
        changed = split(get_runtime(), args.article)
    except (LookupError, StoryChangeError) as exc:
        print(f"error: {exc.args[0] if isinstance(exc, LookupError) else exc}", file=sys.stderr)
        return EXIT_ERROR
    schedule_renders(changed.feeds)
    print(f"article {args.article} is now story {changed.story_id}; feeds {changed.feeds} re-rendering")
    return EXIT_OK
