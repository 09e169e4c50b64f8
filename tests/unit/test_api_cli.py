"""`router-distill api` refuses bad flags and unusable setups with one line."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from router_distill.cli import main


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--port", "70000"], "port 70000 is outside 0-65535"),
        (["--port", "http"], "'http' is not a port number"),
        (["--reload-interval", "0"], "'0' must be a positive number"),
        (["--reload-interval", "nan"], "'nan' must be a positive number"),
        (["--reload-interval", "1e9"], "'1e9' is outside 0.05-3,600 seconds"),
        (["--reload-interval", "0.001"], "'0.001' is outside 0.05-3,600 seconds"),
        (["--max-queries", "0"], "0 is outside 1-100,000"),
        (["--drain-seconds", "-1"], "'-1' must be a positive number"),
    ],
)
def test_bad_flags_are_usage_errors(
    router_home: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["api", *flags])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, lines
    return lines[0]


def test_a_bad_router_name_is_refused_before_anything_starts(
    router_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["api", "--router", "Bad Name"]) == 2
    assert "invalid router name 'Bad Name'" in _error_line(capsys)


def test_a_missing_taxonomy_file_is_named(
    router_home: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["api", "--taxonomy", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in _error_line(capsys)


def test_a_port_in_use_is_a_one_line_error(
    router_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        assert main(["api", "--port", str(port)]) == 2
    finally:
        taken.close()
    line = _error_line(capsys)
    assert f"cannot listen on 127.0.0.1:{port}" in line


def test_a_storage_root_that_is_a_file_is_named(
    router_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    router_home.write_text("not a folder")
    assert main(["api", "--port", "0"]) == 2
    assert "ROUTER_DISTILL_HOME" in _error_line(capsys)
