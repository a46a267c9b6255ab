import pytest

from dockyard.cli import main as cli_main
from dockyard.cli.client import ApiClient, quote, urlencode
from dockyard.cli.parser import CommandParser, UsageError
from dockyard.cli.template import TemplateError, render
from dockyard.units import bytes_size, human_size


def test_quote_matches_percent_encoding():
    assert quote("127.0.0.1:5000/a/b:1", safe="/:@") == "127.0.0.1:5000/a/b:1"
    assert quote('{"reference": ["busybox"]}') == "%7B%22reference%22%3A%20%5B%22busybox%22%5D%7D"
    assert (
        urlencode({"fromImage": "docker.io/library/x", "tag": "1"})
        == "fromImage=docker.io%2Flibrary%2Fx&tag=1"
    )
    assert quote("ü") == "%C3%BC"


def test_client_host_rules(monkeypatch):
    monkeypatch.delenv("DOCKYARD_HOST", raising=False)
    assert ApiClient().path == "/var/run/dockyard.sock"
    monkeypatch.setenv("DOCKYARD_HOST", "unix:///tmp/x.sock")
    assert ApiClient().path == "/tmp/x.sock"
    assert ApiClient("unix:///run/y.sock").path == "/run/y.sock"
    with pytest.raises(ValueError):
        ApiClient("tcp://1.2.3.4:2375")


def test_template_fields_and_functions():
    data = {"Server": {"Version": "1.0", "Os": "linux", "List": ["a", "b"]}, "Flag": True}
    assert render("{{.Server.Version}}", data) == "1.0"
    assert render("{{ json .Server.List }}", data) == '["a","b"]'
    assert render("{{upper .Server.Os}}\\t{{.Flag}}", data) == "LINUX\ttrue"
    assert render('{{join .Server.List ","}}', data) == "a,b"
    assert render("{{.Missing}}", data) == "<no value>"
    with pytest.raises(TemplateError):
        render("{{nosuchfunc .X}}", data)


def test_sizes_as_docker_prints_them():
    assert human_size(3073245) == "3.073MB"
    assert human_size(512) == "512B"
    assert human_size(1982359) == "1.982MB"
    assert bytes_size(23.54 * 1024**3) == "23.54GiB"
    assert bytes_size(64 * 1024**2) == "64MiB"


def test_parser_errors_in_docker_words():
    p = CommandParser("version", "dockyard version [OPTIONS]", "Show the Dockyard version information")
    p.add_argument("-f", "--format", metavar="string")
    with pytest.raises(UsageError, match="unknown flag: --nope\nSee 'dockyard version --help'."):
        p.parse_args(["--nope"])
    with pytest.raises(UsageError, match="flag needs an argument: --format"):
        p.parse_args(["--format"])


def test_help_in_docker_layout(capsys):
    with pytest.raises(SystemExit) as e:
        cli_main.run(["version", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage:  dockyard version [OPTIONS]\n\nShow the Dockyard version information\n")
    assert "  -f, --format string" in out


def test_main_help_lists_commands(capsys):
    assert cli_main.run(["--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage:  dockyard [OPTIONS] COMMAND" in out
    assert "  version    Show the Dockyard version information" in out


def test_unknown_command(capsys):
    assert cli_main.run(["frobnicate"]) == 1
    assert "dockyard: 'frobnicate' is not a dockyard command." in capsys.readouterr().err


def test_daemon_down_message(tmp_path, capsys):
    host = f"unix://{tmp_path}/x.sock"
    assert cli_main.run(["-H", host, "info"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"Cannot connect to the Dockyard daemon at {host}. Is the dockyard daemon running?"
    )


def test_build_time_in_go_ansic_layout():
    from dockyard.cli.commands.system import _ansic

    assert _ansic("2026-11-28T00:00:00.000000000+00:00") == "Sat Nov 28 00:00:00 2026"
    assert _ansic("2025-05-03T12:07:14Z") == "Sat May  3 12:07:14 2025"
    assert _ansic("2024-02-29T23:59:59Z") == "Thu Feb 29 23:59:59 2024"
    assert _ansic("garbage") == "garbage"
