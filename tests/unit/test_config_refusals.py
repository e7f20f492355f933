"""More values a config file can get wrong: each is refused with the file, the key and what
was expected, when the file is read, never later in a worker."""

from __future__ import annotations

from pathlib import Path

import pytest

from redrive import ConfigError, Settings


def write(tmp_path: Path, text: str, name: str = "redrive.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("[policy]\nmax_attempts = 2.5\n", "policy.max_attempts", "an integer >= 1"),
        ("[policy]\nmultiplier = 'double'\n", "policy.multiplier", "a number, got 'double'"),
        ("[policy]\nretry_on = 3\n", "policy.retry_on", "got 3"),
        ("[policy]\nretry_on = [3]\n", "policy.retry_on[0]", "an exception class name, got 3"),
        (
            "[policy]\nretry_on = ['json.dumps']\n",
            "policy.retry_on[0]",
            "an exception class, got 'json.dumps'",
        ),
        ("[policy]\nmultiplier = 0.5\n", "policy", "multiplier must be 1 or more"),
    ],
)
def test_bad_values_name_file_key_and_expectation(
    tmp_path: Path, text: str, key: str, expected: str
) -> None:
    """Each bad value is reported with the file, the key and what was expected."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        Settings.load(path)
    message = str(caught.value)
    assert str(path) in message and key in message and expected in message


def test_a_yaml_file_that_is_a_list_is_not_settings(tmp_path: Path) -> None:
    """A YAML document whose top level is a list is refused as a whole."""
    path = write(tmp_path, "- store_url: sqlite:///x.db\n", "redrive.yaml")
    with pytest.raises(ConfigError, match="expected a table of settings at the top level"):
        Settings.load(path)


def test_a_valid_jitter_is_taken(tmp_path: Path) -> None:
    """``jitter`` set in a policy table is the policy's jitter."""
    settings = Settings.load(write(tmp_path, "[policy]\njitter = 'equal'\n"))
    assert settings.policy is not None and settings.policy.jitter == "equal"
    assert settings.policy_for("orders.created", "app.h").jitter == "equal"


def test_a_handler_policy_out_of_range_is_refused_when_read(tmp_path: Path) -> None:
    """A handler's policy table with a multiplier under 1 is refused as the file is read,
    naming the file, before any handler runs under it."""
    text = "[handlers.'app.h'.policy]\nmultiplier = 0.5\n"
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        Settings.load(path)
    assert str(path) in str(caught.value)
    assert "multiplier must be 1 or more" in str(caught.value)
