"""The command line's texts: complete short help for every command, the options of `serve`, and
a usage line that names the program the user ran (the backend/ scripts run one command)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from tickhub.app import cli
from tickhub.core.model import FeedState, FeedStatus


def _words(text: str) -> str:
    return " ".join(text.split())


def test_help_lists_every_command_with_its_whole_short_help() -> None:
    result = CliRunner().invoke(cli.main, ["--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    listing = _words(result.output)
    commands = result.output.split("Commands:")[1]
    assert "..." not in commands
    for name, command in cli.main.commands.items():
        assert command.short_help, f"{name} has no short help"
        assert command.short_help.endswith("."), name
        assert f"{name} {_words(command.short_help)}" in listing


def test_serve_help_names_the_options_users_try_first() -> None:
    result = CliRunner().invoke(cli.main, ["serve", "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    for option in ("--host", "--port", "--feed", "--symbols", "--log-level", "--replay-file"):
        assert option in result.output
    assert "[sim|replay|kite]" in result.output
    assert "overrides WS_PORT" in _words(result.output)


def test_a_bad_option_value_is_a_usage_error_not_a_traceback() -> None:
    result = CliRunner().invoke(cli.main, ["serve", "--feed", "nasdaq"])
    assert result.exit_code == 2
    assert "Invalid value for '--feed'" in result.output
    assert "Traceback" not in result.output


def test_a_script_running_one_command_names_itself_in_the_usage_line(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli.main.commands["check"],
        ["--single", "--help"],
        prog_name="test_websocket_client.py",
        obj={"env_file": None},
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: test_websocket_client.py [OPTIONS]")
    assert " check " not in result.output.splitlines()[0]


def test_a_status_line_says_the_state_once_and_the_detail_when_it_adds_something() -> None:
    assert FeedStatus(FeedState.STOPPED, "stopped").describe() == "stopped"
    assert FeedStatus(FeedState.LIVE, "").describe() == "live"
    assert FeedStatus(FeedState.FINISHED, "end of replay").describe() == "finished (end of replay)"
