import stat
from pathlib import Path

import pytest

from lab93zmq.core.errors import ConfigError
from lab93zmq.io.paths import config_dir, data_dir, inbox_path, prepare_parent, state_dir

HOME = Path("/home/alice")


def test_xdg_data_home_is_used_when_absolute():
    assert data_dir({"XDG_DATA_HOME": "/data"}, HOME) == Path("/data/lab93")


@pytest.mark.parametrize("value", [None, "", "relative/dir"])
def test_xdg_unset_empty_or_relative_means_default(value):
    environ = {} if value is None else {"XDG_DATA_HOME": value}
    assert data_dir(environ, HOME) == HOME / ".local/share/lab93"


@pytest.mark.parametrize(
    ("where", "variable", "default"),
    [(config_dir, "XDG_CONFIG_HOME", ".config/lab93"),
     (state_dir, "XDG_STATE_HOME", ".local/state/lab93")],
)
def test_config_and_state_follow_the_same_rule(where, variable, default):
    assert where({variable: "/elsewhere"}, HOME) == Path("/elsewhere/lab93")
    assert where({variable: "relative"}, HOME) == where({}, HOME) == HOME / default


def test_db_option_wins():
    assert inbox_path("/tmp/x.db", {"XDG_DATA_HOME": "/data"}, HOME) == Path("/tmp/x.db")
    assert inbox_path(None, {"XDG_DATA_HOME": "/data"}, HOME) == Path("/data/lab93/inbox.db")


def test_directory_is_created_private_only_when_used(tmp_path):
    target = tmp_path / "deep" / "lab93" / "inbox.db"
    inbox_path(None, {"XDG_DATA_HOME": str(tmp_path / "deep")})
    assert not target.parent.exists()  # resolving creates nothing
    prepare_parent(target)
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700


def test_unusable_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cannot create the inbox directory"):
        prepare_parent(blocker / "sub" / "inbox.db")


def test_importing_creates_nothing(tmp_path, monkeypatch):
    import importlib

    import lab93zmq.io.paths

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "never"))
    importlib.reload(lab93zmq.io.paths)
    assert not (tmp_path / "never").exists()
