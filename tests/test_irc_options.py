"""The IRC face's options: --irc-port and its company, on the command line and in the API."""

from __future__ import annotations

import pytest

import lab93zmq
from lab93zmq.api.options import node_config
from lab93zmq.core.errors import UsageError
from lab93zmq.frontend.cli import HELP, main
from lab93zmq.frontend.environment import Environment


def test_an_irc_face_is_settings_of_a_server(tmp_path):
    password = tmp_path / "pw"
    password.write_text("open sesame\nsecond line ignored\n")
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("x")
    config = node_config("server", irc_port="6667", irc_address="127.0.0.2",
                         irc_tls_cert=cert, irc_tls_key=key, irc_password_file=password)
    assert config.irc is not None
    assert (config.irc.port, config.irc.address, config.irc.password) == (
        6667, "127.0.0.2", "open sesame")
    assert (config.irc.tls_cert, config.irc.tls_key) == (cert, key)
    assert node_config("server").irc is None
    assert node_config("server", irc_port=0, irc_password="pw").irc.password == "pw"


@pytest.mark.parametrize(("options", "sentence"), [
    ({"irc_address": "127.0.0.1"}, "--irc-address goes with --irc-port"),
    ({"irc_port": 70000}, "--irc-port takes a whole number from 0 to 65535"),
    ({"irc_port": 1, "irc_tls_cert": "c.pem"}, "--irc-tls-cert and --irc-tls-key go together"),
    ({"irc_port": 1, "irc_tls_cert": "nothere", "irc_tls_key": "nothere"},
     "--irc-tls-cert 'nothere': there is no file there"),
    ({"irc_port": 1, "irc_password_file": "nothere"},
     "--irc-password-file 'nothere': there is no file there"),
    ({"irc_port": 1, "irc_password": "a\nb"}, "the IRC password must be one line"),
])
def test_wrong_irc_options_are_one_sentence(options, sentence, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=sentence):
        node_config("server", **options)


def test_an_empty_password_file_is_refused(tmp_path):
    empty = tmp_path / "pw"
    empty.write_text("\n")
    with pytest.raises(UsageError, match="its first line is empty"):
        node_config("server", irc_port=1, irc_password_file=empty)


def test_secure_mode_refuses_an_irc_face_without_tls_and_a_password(tmp_path, capsys):
    password = tmp_path / "pw"
    password.write_text("pw\n")
    env = Environment()
    assert main(["-r", "-s", "-i", "lo", "--secure", "--irc-port", "0",
                 "--irc-password-file", str(password)], env) == 2
    err = capsys.readouterr().err
    assert "lab93-node: --secure with --irc-port: IRC has no CurveZMQ" in err
    assert err.count("\n") == 1  # one sentence
    with pytest.raises(UsageError, match="IRC has no CurveZMQ"):
        lab93zmq.Server(secure=True, irc_port=0, interfaces=["lo"])


def test_irc_options_are_for_a_server_only(capsys):
    env = Environment()
    assert main(["-r", "-c", "-i", "lo", "--irc-port", "6667"], env) == 2
    assert "--irc-port is for a repeater server (-r -s)" in capsys.readouterr().err
    assert main(["-b", "-i", "lo", "--irc-tls-key", "k"], env) == 2
    assert "--irc-tls-key is for a repeater server (-r -s)" in capsys.readouterr().err


def test_help_names_every_irc_option():
    for flag in ("--irc-port PORT", "--irc-address ADDR", "--irc-tls-cert FILE",
                 "--irc-tls-key FILE", "--irc-password-file FILE"):
        assert flag in HELP


def test_a_server_that_cannot_open_its_irc_port_says_so(tmp_path, beacon_port):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(lab93zmq.Lab93Error, match=f"cannot open the IRC face on 127.0.0.1"
                                                        f" port {port}"):
            lab93zmq.Server(address="127.0.0.1", port=0, interfaces=["lo"],
                            beacon_port=beacon_port, db=tmp_path / "s.db", irc_port=port)


def test_a_bad_certificate_is_a_sentence(tmp_path, beacon_port):
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("not a certificate")
    key.write_text("not a key")
    with pytest.raises(lab93zmq.Lab93Error, match="give a PEM certificate and its private key"):
        lab93zmq.Server(address="127.0.0.1", port=0, interfaces=["lo"], beacon_port=beacon_port,
                        db=tmp_path / "s.db", irc_port=0, irc_tls_cert=cert, irc_tls_key=key)
