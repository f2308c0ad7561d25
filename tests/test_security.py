"""Secure mode's files and policy, without sockets: key pairs, authorized keys,
known servers, beacon keys, handshake sentences and the command line."""

from __future__ import annotations

import json
import os
import stat

import pytest
import zmq

from lab93zmq.core.errors import UsageError
from lab93zmq.core.presence import (
    Beacon,
    BeaconError,
    BeaconKind,
    PeerChanged,
    PeerTable,
    scan_json,
)
from lab93zmq.frontend import cli
from lab93zmq.io import security
from lab93zmq.io.paths import config_dir
from lab93zmq.io.security import (
    AuthorizedKeys,
    KnownServers,
    SecurityError,
    generate_keypair,
    handshake_problem,
    key_text,
    load_keypair,
    parse_key,
)

NODE = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"


def _raw_key() -> bytes:
    public, _ = zmq.curve_keypair()
    return parse_key(public.decode())


def _authorize(directory, name: str, keys) -> None:
    directory.mkdir(exist_ok=True)
    (directory / f"{name}.key").write_bytes(keys.path.read_bytes())


def test_config_dir_follows_xdg_and_ignores_relative(tmp_path):
    assert config_dir({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "lab93"
    assert config_dir({"XDG_CONFIG_HOME": "rel"}, home=tmp_path) == tmp_path / ".config/lab93"
    assert config_dir({}, home=tmp_path) == tmp_path / ".config/lab93"


def test_keygen_writes_a_private_secret_and_never_overwrites(tmp_path):
    directory = tmp_path / "cfg"
    keys = generate_keypair(directory, "alice")
    secret = directory / "id.key_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert keys.user == "alice" and len(keys.public) == 40 and len(keys.public_raw) == 32
    assert load_keypair(directory) == keys
    with pytest.raises(SecurityError, match="already exists.*--force"):
        generate_keypair(directory, "alice")
    assert load_keypair(directory) == keys  # untouched
    replaced = generate_keypair(directory, "alice", force=True)
    assert replaced.public != keys.public


def test_a_missing_or_readable_secret_is_refused_with_the_fix(tmp_path):
    with pytest.raises(SecurityError, match="lab93-node --keygen"):
        load_keypair(tmp_path)
    generate_keypair(tmp_path, "bob")
    os.chmod(tmp_path / "id.key_secret", 0o644)
    with pytest.raises(SecurityError, match="chmod 600"):
        load_keypair(tmp_path)


def test_parse_key_round_trips_and_names_bad_text():
    raw = _raw_key()
    assert parse_key(key_text(raw)) == raw
    with pytest.raises(SecurityError, match="40 Z85"):
        parse_key("short")
    with pytest.raises(SecurityError, match="not Z85"):
        parse_key("~" * 40)


def test_authorized_keys_name_each_key_by_its_file_and_reload(tmp_path):
    alice = generate_keypair(tmp_path / "a", "alice")
    bob = generate_keypair(tmp_path / "b", "bob")
    directory = tmp_path / "authorized"
    authorized = AuthorizedKeys(directory, recheck=0)  # list on every question
    assert authorized.name_of(alice.public_raw) is None  # no directory yet
    _authorize(directory, "alice", alice)
    (directory / "bad name!.key").write_bytes(bob.path.read_bytes())  # not a valid name
    (directory / "junk.key").write_text("no key here\n")
    assert authorized.names() == {alice.public_raw: "alice"}
    (directory / "alias.key").write_bytes(alice.path.read_bytes())  # one key, two names
    assert authorized.names() == {}  # ambiguous: refused, not guessed
    (directory / "alias.key").unlink()
    _authorize(directory, "bob", bob)  # added while running: seen without a restart
    assert authorized.name_of(bob.public_raw) == "bob"
    (directory / "bob.key").unlink()
    assert authorized.name_of(bob.public_raw) is None


def test_known_servers_trust_on_first_use_and_refuse_a_changed_key(tmp_path):
    known = KnownServers(tmp_path / "cfg" / "known_servers")
    first, second = _raw_key(), _raw_key()
    assert known.get("10.0.0.1:5190") is None
    assert known.check("10.0.0.1:5190", first)
    assert known.get("10.0.0.1:5190") == first
    assert known.check("10.0.0.1:5190", first)
    with pytest.raises(SecurityError, match="now shows the key.*remove the line"):
        known.check("10.0.0.1:5190", second)
    assert known.check("10.0.0.2:5190", second)  # another server, its own line
    assert len(known.path.read_text().splitlines()) == 2


def test_beacon_carries_a_key_and_rejects_a_wrong_length():
    key = _raw_key()
    beacon = Beacon(BeaconKind.ANNOUNCE, NODE, "repeater", 5190, 40000, "alice", key)
    data = beacon.encode()
    assert Beacon.decode(data) == beacon and Beacon.decode(data).secure
    plain = Beacon(BeaconKind.ANNOUNCE, NODE, "repeater", 5190, 40000, "alice")
    assert not Beacon.decode(plain.encode()).secure
    assert beacon.leaving().key == key
    with pytest.raises(BeaconError, match=r"header says 34 \(\+32, \+16\)"):
        Beacon.decode(data[:-1])
    with pytest.raises(BeaconError, match="32 raw bytes"):
        Beacon(BeaconKind.ANNOUNCE, NODE, "repeater", 5190, 40000, "alice", b"short")


def test_scan_json_shows_a_secure_instance_key_and_nothing_more_for_a_plain_one():
    from datetime import datetime, timezone

    key = _raw_key()
    seen = datetime(2026, 11, 24, tzinfo=timezone.utc)
    secure = scan_json(Beacon(BeaconKind.ANNOUNCE, NODE, "broadcast", 1, 2, "al", key), "h", seen)
    assert secure["key"] == key_text(key)
    plain = scan_json(Beacon(BeaconKind.ANNOUNCE, NODE, "broadcast", 1, 2, "al"), "h", seen)
    assert set(plain) == {"node", "user", "mode", "address", "router", "pub", "last_seen"}


def test_a_new_key_for_a_known_peer_is_a_change():
    table = PeerTable(OTHER, 1.0)
    first = Beacon(BeaconKind.ANNOUNCE, NODE, "broadcast", 1, 2, "al", _raw_key())
    table.on_beacon(first, "127.0.0.1", 0.0)
    changed = table.on_beacon(
        Beacon(BeaconKind.ANNOUNCE, NODE, "broadcast", 1, 2, "al", _raw_key()), "127.0.0.1", 0.5
    )
    assert [type(e) for e in changed] == [PeerChanged]


@pytest.mark.parametrize(
    ("event", "value", "secure", "side", "expected"),
    [
        (zmq.EVENT_HANDSHAKE_SUCCEEDED, 0, True, "client", None),
        (
            zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
            zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH,
            False,
            "client",
            "runs with --secure",
        ),
        (
            zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
            zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH,
            True,
            "server",
            "without --secure tried",
        ),
        (zmq.EVENT_HANDSHAKE_FAILED_AUTH, 400, True, "client", "does not know our key"),
        (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, 0, True, "client", "another key than the one"),
        (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, 0, False, "client", "with --secure too"),
        (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, 0, False, "server", "with --secure tried"),
        (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, 0, True, "server", "without --secure tried"),
        (
            zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
            zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC,
            True,
            "server",
            "another server key",
        ),
    ],
)
def test_handshake_problems_become_sentences(event, value, secure, side, expected):
    said = handshake_problem(event, value, we_are_secure=secure, side=side)
    if expected is None:
        assert said is None
    else:
        assert expected in said


# -- the command line ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "sentence"),
    [
        (["-b", "--force"], "--force goes with --keygen"),
        (["-b", "--server-key", "x"], "--server-key goes with --secure"),
        (["-b", "--secure", "--server-key", "x"], "--server-key is for a repeater client"),
        (["-r", "-c", "--secure", "--authorized-keys", "d"], "--authorized-keys is for a server"),
        (["--scan", "--secure"], "--secure is for a node"),
        (["--keygen", "--scan"], "cannot be used together"),
        (["--keygen", "-b"], "runs on its own"),
    ],
)
def test_secure_option_mistakes_get_one_sentence_and_status_2(argv, sentence, capsys):
    from lab93zmq.frontend.environment import Environment

    env = Environment()
    assert cli.main(argv, env) == cli.ExitStatus.USAGE
    err = capsys.readouterr().err
    assert sentence in err and len(err.strip().splitlines()) == 1


def test_keygen_from_the_command_line(tmp_path, monkeypatch, capsys):
    from lab93zmq.frontend.environment import Environment

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert cli.main(["--keygen", "-u", "carol", "--json"], Environment()) == cli.ExitStatus.OK
    line = json.loads(capsys.readouterr().out)
    keys = load_keypair(tmp_path / "lab93")
    assert line == {"user": "carol", "key": keys.public.decode(), "public_file": str(keys.path)}
    assert cli.main(["--keygen"], Environment()) == cli.ExitStatus.ERROR
    assert "--force" in capsys.readouterr().err
    assert cli.main(["--keygen", "--force"], Environment()) == cli.ExitStatus.OK
    assert "Your public key: " in capsys.readouterr().out
    assert load_keypair(tmp_path / "lab93").public != keys.public


def test_a_bad_server_key_is_a_usage_error(tmp_path, monkeypatch, capsys):
    from lab93zmq.frontend.environment import Environment

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    status = cli.main(["-r", "-c", "--secure", "--server-key", "nope"], Environment())
    assert status == cli.ExitStatus.USAGE
    assert "40 Z85 characters" in capsys.readouterr().err


def test_secure_without_a_key_pair_says_how_to_make_one(tmp_path, monkeypatch, capsys):
    from lab93zmq.frontend.environment import Environment

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    status = cli.main(["-r", "-s", "--secure", "--db", str(tmp_path / "i.db")], Environment())
    assert status == cli.ExitStatus.ERROR
    assert "lab93-node --keygen" in capsys.readouterr().err


def test_a_secure_node_speaks_as_its_key_user_by_default(tmp_path, monkeypatch):
    from lab93zmq.frontend.options import build_config

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    generate_keypair(tmp_path / "lab93", "dora")
    args = cli.parse_args(["-b", "--secure", "--db", str(tmp_path / "i.db")])
    config = build_config("broadcast", args)
    assert config.user == "dora"
    assert config.secure.authorized_keys == tmp_path / "lab93" / "authorized_keys"
    assert security.load_keypair(tmp_path / "lab93") == config.secure.keys
    with pytest.raises(UsageError):
        build_config("client", cli.parse_args(["-r", "-c", "--secure", "--server-key", "x"]))


def test_a_plain_node_does_not_load_what_only_secure_mode_needs():
    """asyncio (pulled in by pyzmq's ZAP thread and zmq.utils.monitor) costs a node
    about 3.5 MiB of its ~30; plain nodes must not carry it. (psycopg, the optional
    PostgreSQL driver, loads asyncio too, and peewee imports it whenever it is
    installed: an install without the [postgresql] extra is what is checked here.)"""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "sys.modules['psycopg'] = None  # not installed\n"
        "import lab93zmq.frontend.cli, lab93zmq.frontend.run, lab93zmq.frontend.console\n"
        "import lab93zmq.io.broadcast_actor, lab93zmq.io.repeater_server\n"
        "import lab93zmq.io.repeater_client\n"
        "print('asyncio' in sys.modules)\n"
        "import lab93zmq.io.zap\n"
        "print('asyncio' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_a_failure_without_detail_counts_only_when_it_repeats():
    watch = security.HandshakeWatch(we_are_secure=False, side="client")
    no_detail = zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    # A server stopping mid-handshake: one failure, then it is back.
    assert watch.feed(no_detail, 0) is None
    assert watch.feed(zmq.EVENT_HANDSHAKE_SUCCEEDED, 0) is None
    assert watch.feed(no_detail, 0) is None and watch.feed(no_detail, 0) is None
    assert "--secure too" in watch.feed(no_detail, 0)  # the third in a row: a mismatch
    # A server reports the first: a mismatched client fails once and gives up.
    server = security.HandshakeWatch(we_are_secure=True, side="server")
    assert "without --secure tried" in server.feed(no_detail, 0)
    # A definite refusal needs no repeat.
    fresh = security.HandshakeWatch(we_are_secure=True, side="client")
    assert "does not know our key" in fresh.feed(zmq.EVENT_HANDSHAKE_FAILED_AUTH, 400)


def test_authorized_keys_cost_one_stat_until_something_changes(tmp_path, monkeypatch):
    alice = generate_keypair(tmp_path / "a", "alice")
    directory = tmp_path / "authorized"
    _authorize(directory, "alice", alice)
    now = [0.0]
    authorized = AuthorizedKeys(directory, clock=lambda: now[0], recheck=1.0)
    assert authorized.name_of(alice.public_raw) == "alice"
    listings = []
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda path: listings.append(path) or real_scandir(path))
    for _ in range(100):
        assert authorized.name_of(alice.public_raw) == "alice"
    assert listings == []  # nothing changed: no listing
    (directory / "alice.key").write_text("edited in place, no key now\n")  # dir time stays
    authorized.name_of(alice.public_raw)
    assert listings == []  # not yet: an edit in place waits for the recheck
    now[0] = 1.0
    assert authorized.name_of(alice.public_raw) is None and listings  # listed, reloaded
    before = directory.stat().st_mtime_ns
    (directory / "bob.key").write_bytes(alice.path.read_bytes())  # a new file: seen at once
    # (Adding a file moves the directory's time; make sure it moved, whatever the clock's tick.)
    os.utime(directory, ns=(before + 1, before + 1))
    assert authorized.name_of(alice.public_raw) == "bob"


def test_a_question_asked_during_a_reload_waits_for_the_new_table(tmp_path, monkeypatch):
    """The ZAP thread and the actor ask at once: neither may answer from the old table."""
    import threading

    alice = generate_keypair(tmp_path / "a", "alice")
    directory = tmp_path / "authorized"
    _authorize(directory, "alice", alice)
    authorized = AuthorizedKeys(directory)
    loading, release = threading.Event(), threading.Event()
    real_load = AuthorizedKeys._load

    def slow_load(self):
        loading.set()
        assert release.wait(5)
        return real_load(self)

    monkeypatch.setattr(AuthorizedKeys, "_load", slow_load)
    first = threading.Thread(target=authorized.name_of, args=(alice.public_raw,))
    first.start()
    assert loading.wait(5)  # the first question is loading the directory now
    answers = []
    second = threading.Thread(target=lambda: answers.append(authorized.name_of(alice.public_raw)))
    second.start()
    second.join(0.2)
    assert answers == []  # it waits, rather than saying "not authorized"
    release.set()
    first.join(5)
    second.join(5)
    assert answers == ["alice"]


def test_a_key_pair_holds_a_signing_key_and_one_of_0_1_gets_one_added(tmp_path):
    from lab93zmq.io import signing

    keys = generate_keypair(tmp_path / "new", "alice")
    assert keys.sign_seed is not None and len(keys.sign_public) == 32
    public_file = keys.path
    assert signing.read_field(public_file, signing.PUBLIC_FIELD) == keys.sign_public
    assert signing.read_field(public_file, signing.SECRET_FIELD) is None  # never handed out
    check = signing.verifier(keys.sign_public)
    assert check(b"data", signing.Signer(keys.sign_seed)(b"data"))
    assert not check(b"other", signing.Signer(keys.sign_seed)(b"data"))
    # A pair as lab93-node 0.1 wrote it: the CURVE keys only. --keygen adds the signing key.
    import zmq.auth

    old = tmp_path / "old"
    old.mkdir(mode=0o700)
    zmq.auth.create_certificates(old, "id", metadata={"user": "bob"})
    os.chmod(old / "id.key_secret", 0o600)
    before = load_keypair(old)
    assert before.sign_seed is None
    after = generate_keypair(old, "bob")
    assert (after.public, after.secret) == (before.public, before.secret)
    assert after.sign_seed is not None and load_keypair(old) == after
    with pytest.raises(SecurityError, match="already exists"):
        generate_keypair(old, "bob")


def test_authorized_keys_give_node_ids_their_names_and_keep_the_last_table(
        tmp_path, caplog, monkeypatch):
    import errno

    from lab93zmq.core.signing import node_id_of
    from lab93zmq.io import security

    alice = generate_keypair(tmp_path / "alice", "alice")
    directory = tmp_path / "authorized"
    directory.mkdir()
    (directory / "alice.key").write_bytes(alice.path.read_bytes())
    clock = [0.0]
    table = AuthorizedKeys(directory, clock=lambda: clock[0])
    assert table.author_of(node_id_of(alice.public_raw)) == ("alice", alice.sign_public)
    assert table.author_of("0" * 32) is None

    def out_of_descriptors(path):
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(security.os, "scandir", out_of_descriptors)
    for _ in range(3):  # re-read and failing each time: the last table stays, said once
        clock[0] += 5
        (directory / "bob.key").write_bytes(alice.path.read_bytes())  # a change to see
        assert table.name_of(alice.public_raw) == "alice"
    assert table.failing
    assert sum("keeping the 1 authorized key" in r.message for r in caplog.records) == 1
    monkeypatch.undo()
    clock[0] += 5
    assert table.name_of(alice.public_raw) is None  # read again: one key in two files
    assert not table.failing


def test_a_secure_broadcast_node_needs_a_signing_key(tmp_path):
    from dataclasses import replace

    from lab93zmq.io.config import SecureConfig
    from lab93zmq.io.secure_broadcast import broadcast_trust

    keys = generate_keypair(tmp_path / "keys", "alice")
    secure = SecureConfig(keys=replace(keys, sign_seed=None, sign_public=None),
                          authorized_keys=tmp_path, known_servers=tmp_path / "known")
    with pytest.raises(SecurityError, match="no signing key .* run lab93-node --keygen"):
        broadcast_trust(secure, AuthorizedKeys(tmp_path), "alice")
    trust = broadcast_trust(replace(secure, keys=keys), AuthorizedKeys(tmp_path), "alice")
    from lab93zmq.core.signing import node_id_of

    own = trust.author_of(node_id_of(keys.public_raw))
    assert own.name == "alice" and own.verify(b"x", trust.sign(b"x"))
