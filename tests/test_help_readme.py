"""--help, /help and README.rst say the same about the chat commands and options."""

from __future__ import annotations

import re
from pathlib import Path

from lab93zmq.core.commands import COMMANDS, HELP
from lab93zmq.frontend.cli import EPILOG, OPTIONS

README = (Path(__file__).parent.parent / "README.rst").read_text()


def readme_commands() -> dict[str, str]:
    """The README's table of chat commands: usage -> what it does."""
    section = README.split("Chat commands\n-------------\n", 1)[1]
    table = section.split("\n=====", 2)[1]  # between the table's two rules
    rows = re.findall(r"^``(/[^`]+)``\s+(.+)$", table, re.MULTILINE)
    return {usage.replace("\u2026", "..."): what.replace("``", "") for usage, what in rows}


def test_every_command_of_the_table_is_in_the_readme_with_the_same_usage():
    documented = readme_commands()
    assert list(documented) == [command.usage for command in COMMANDS.values()]
    for command in COMMANDS.values():
        assert documented[command.usage] == command.summary, command.name


def test_every_command_is_in_help_and_in_the_epilog_of_dash_dash_help():
    epilog = " ".join(EPILOG.split())
    for command in COMMANDS.values():
        assert command.usage in HELP
        assert f"/{command.name}" in epilog, command.name


def test_the_options_of_this_work_are_in_both():
    for text in ("--since TIME", "--history [N]", "NO_COLOR", "XDG_STATE_HOME"):
        assert text in OPTIONS + EPILOG or text in "lab93-node --history [N] [options]"
        assert text.split()[0] in README, text


def test_every_option_of_dash_dash_help_is_named_in_the_readme():
    options = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", OPTIONS))
    assert {"--send", "--room", "--irc-port", "--traceback"} <= options  # read them all
    missing = sorted(option for option in options
                     if not re.search(rf"``[^`]*{re.escape(option)}\b", README))
    assert missing == []
