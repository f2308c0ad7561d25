"""Where the inbox lives: ``--db`` > ``$XDG_DATA_HOME/lab93`` > ``~/.local/share/lab93``;
where keys live: ``$XDG_CONFIG_HOME/lab93`` > ``~/.config/lab93``; where the prompt's
input history lives: ``$XDG_STATE_HOME/lab93`` > ``~/.local/state/lab93``.

Resolved when used, never at import time; directories are created mode 0700
because an inbox holds private messages.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ..core.errors import ConfigError

INBOX_FILENAME = "inbox.db"


def _xdg_dir(variable: str, fallback: tuple[str, ...], environ: Mapping[str, str] | None,
             home: Path | None) -> Path:
    """``$variable/lab93``, or ``~/<fallback>/lab93`` when it is unset, empty or relative
    (the XDG Base Directory spec says relative values must be ignored)."""
    environ = os.environ if environ is None else environ
    xdg = environ.get(variable, "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "lab93"
    home = Path.home() if home is None else home
    return home.joinpath(*fallback, "lab93")


def data_dir(environ: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    """The lab93 data directory; an empty or relative ``XDG_DATA_HOME`` counts as unset."""
    return _xdg_dir("XDG_DATA_HOME", (".local", "share"), environ, home)


def config_dir(environ: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    """The lab93 config directory (keys, trusted keys); ``XDG_CONFIG_HOME`` that is
    empty or relative counts as unset, as for ``data_dir``."""
    return _xdg_dir("XDG_CONFIG_HOME", (".config",), environ, home)


def state_dir(environ: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    """The lab93 state directory (the prompt's input history); ``XDG_STATE_HOME`` that is
    empty or relative counts as unset, as for ``data_dir``."""
    return _xdg_dir("XDG_STATE_HOME", (".local", "state"), environ, home)


def inbox_path(
    db_option: str | None,
    environ: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> Path:
    """The inbox file to use: ``--db PATH`` when given, else the default one."""
    if db_option:
        return Path(db_option).expanduser()
    return data_dir(environ, home) / INBOX_FILENAME


def prepare_parent(path: Path, what: str = "inbox") -> None:
    """Create the directory of ``path`` (mode 0700) the first time it is needed."""
    parent = path.parent
    if parent.is_dir():
        return
    try:
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot create the {what} directory {parent}: {error.strerror}"
                          ) from None
