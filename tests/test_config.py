"""Settings: flags, environment variables and the server limits they describe."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from daw_popular import config
from daw_popular.server import Limits


def parse(argv: list[str], env: dict[str, str] | None = None) -> config.Settings:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser, env or {})
    return config.from_args(parser.parse_args(argv))


def test_defaults_match_the_dataclass() -> None:
    assert parse([]) == config.Settings()


def test_a_flag_wins_over_the_environment_which_wins_over_the_default() -> None:
    env = {"DAW_POPULAR_PORT": "9000", "DAW_POPULAR_CACHE_BYTES": "64MiB"}
    assert parse([], env).port == 9000
    assert parse([], env).cache_bytes == 64 * 1024**2
    assert parse(["--port", "9001"], env).port == 9001


@pytest.mark.parametrize(
    ("text", "size"),
    [("1048576", 1048576), ("512KiB", 512 * 1024), ("256MB", 256 * 1024**2), ("1g", 1024**3)],
)
def test_sizes_read_binary_multiples(text: str, size: int) -> None:
    assert config.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "-1", "1 TB"])
def test_a_bad_size_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        config.parse_size(text)


@pytest.mark.parametrize("flag", ["--deadline", "--read-timeout", "--connect-timeout"])
@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "soon"])
def test_an_upstream_time_limit_must_be_positive(flag: str, text: str) -> None:
    with pytest.raises(SystemExit):
        parse([flag, text])
    assert parse([flag, "0.25"]) == dataclasses.replace(
        config.Settings(), **{flag[2:].replace("-", "_"): 0.25}
    )


def test_booleans_from_the_environment() -> None:
    assert parse([], {"DAW_POPULAR_ACCESS_LOG": "yes"}).access_log is True
    assert parse([], {"DAW_POPULAR_ACCESS_LOG": "0"}).access_log is False
    with pytest.raises(SystemExit):
        parse([], {"DAW_POPULAR_ACCESS_LOG": "perhaps"})


def test_every_server_limit_is_a_setting_with_the_same_default() -> None:
    """No limit of the server core is out of the operator's reach."""
    settings = config.Settings()
    tunable = {"write_high_water", "write_low_water"}  # the transport's own defaults
    for field in dataclasses.fields(Limits):
        if field.name in tunable:
            continue
        assert getattr(settings, field.name) == field.default, field.name
    limits = dataclasses.replace(settings, max_pipelined=7, max_write_buffer=99).limits()
    assert (limits.max_pipelined, limits.max_write_buffer) == (7, 99)
