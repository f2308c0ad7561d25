"""``--history N`` and ``--since TIME``, alone and with ``--room``, through main(argv)."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from factories import T0, make_message

from lab93zmq.core.errors import UsageError
from lab93zmq.frontend.cli import HELP, main
from lab93zmq.frontend.environment import Environment
from lab93zmq.frontend.options import since_time
from lab93zmq.io.store import Inbox

NOW = T0 + timedelta(days=2)


def run(*argv):
    env = Environment(stdin=io.StringIO(), stdout=io.StringIO(), stderr=io.StringIO(),
                      utc_now=lambda: NOW)
    status = main(list(argv), env)
    return status, env.stdout.getvalue(), env.stderr.getvalue()


@pytest.fixture
def inbox(tmp_path):
    """Five messages, one a day before NOW, two hours before, and an hour before it."""
    db = tmp_path / "inbox.db"
    written = [
        (1, "general", NOW - timedelta(days=1)),
        (2, "ops", NOW - timedelta(hours=2)),
        (3, "general", NOW - timedelta(hours=2, seconds=-1)),
        (4, "ops", NOW - timedelta(hours=1)),
        (5, "general", NOW - timedelta(minutes=1)),
    ]
    with Inbox(db) as opened:
        for seq, room, at in written:
            opened.save(replace(make_message(seq, f"m{seq}", room=room), sent_at=at))
    return str(db)


def contents(out: str) -> list[str]:
    return [json.loads(line)["content"] for line in out.splitlines()]


def test_history_n_prints_the_last_n(inbox):
    assert contents(run("--history", "2", "--json", "--db", inbox)[1]) == ["m4", "m5"]
    assert contents(run("--history", "--db", inbox, "--json")[1]) == [f"m{n}" for n in range(1, 6)]
    assert contents(run("--history", "9", "--json", "--db", inbox)[1]) == [
        f"m{n}" for n in range(1, 6)]


def test_since_a_time_ago_or_an_iso_time(inbox):
    assert contents(run("--history", "--since", "3h", "--json", "--db", inbox)[1]) == [
        "m2", "m3", "m4", "m5"]
    assert contents(run("--history", "--since", "1h30m", "--json", "--db", inbox)[1]) == [
        "m4", "m5"]
    iso = (NOW - timedelta(hours=1, minutes=1)).isoformat()
    assert contents(run("--history", "--since", iso, "--json", "--db", inbox)[1]) == ["m4", "m5"]


def test_n_since_and_room_together(inbox):
    got = run("--history", "1", "--since", "3h", "--room", "ops", "--json", "--db", inbox)[1]
    assert contents(got) == ["m4"]
    got = run("--history", "--since", "1w", "--room", "general", "--json", "--db", inbox)[1]
    assert contents(got) == ["m1", "m3", "m5"]
    status, out, err = run("--history", "--since", "30s", "--db", inbox)
    assert status == 0 and out == "" and "holds no messages written since" in err


@pytest.mark.parametrize("argv, sentence", [
    (["--history", "0"], "--history N: N is a whole number from 1 up, not '0'"),
    (["--history", "two"], "--history N: N is a whole number from 1 up, not 'two'"),
    (["--history", "2", "3"], "unexpected argument '3'"),
    (["-b", "5"], "unexpected argument '5'"),
    (["--history", "--since", "yesterday"], "--since takes an ISO 8601 date or time"),
    (["-b", "--since", "2h"], "--since goes with --history"),
])
def test_wrong_values_are_usage_errors(argv, sentence):
    status, out, err = run(*argv)
    assert status == 2 and sentence in err and out == ""


def test_since_time_reads_what_people_write():
    now = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
    assert since_time("90s", now) == now - timedelta(seconds=90)
    assert since_time("2H", now) == now - timedelta(hours=2)
    assert since_time("1w2d", now) == now - timedelta(days=9)
    eight = datetime(2026, 11, 24, 8, tzinfo=timezone.utc)
    assert since_time("2026-11-24T09:00+01:00", now) == eight
    local = since_time("2026-11-24", now)  # no offset: local midnight
    assert local == datetime(2026, 11, 24).astimezone().astimezone(timezone.utc)
    with pytest.raises(UsageError):
        since_time("99999999999999w", now)
    with pytest.raises(UsageError):
        since_time("soon", now)


def test_help_names_both():
    assert "lab93-node --history [N] [options]" in HELP and "--since TIME" in HELP
