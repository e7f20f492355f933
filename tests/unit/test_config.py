"""Settings from files and the environment; errors that name the file and the key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from redrive import ConfigError, RetryPolicy, Settings
from redrive.config import parse_duration

TOML = """
store_url = "sqlite:///./app.db"
max_replays = 3
redact = ["password", "*.secret"]

[policy]
max_attempts = 4
initial_delay = "500ms"

[topics."orders.created"]
retention = "7d"
dlq_topic = "orders.dead"
[topics."orders.created".policy]
max_attempts = 10
retry_on = ["ConnectionError"]
dead_on = ["json.JSONDecodeError"]

[handlers."app.send_receipt".policy]
max_attempts = 1

[api]
max_page = 200
"""


def write(tmp_path: Path, text: str, name: str = "redrive.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


class TestLoading:
    def test_reads_every_section(self, tmp_path: Path) -> None:
        """A full TOML file becomes typed settings."""
        settings = Settings.load(write(tmp_path, TOML))
        assert settings.store_url == "sqlite:///./app.db"
        assert settings.max_replays == 3
        assert settings.policy == RetryPolicy(max_attempts=4, initial_delay=0.5)
        topic = settings.topics["orders.created"]
        assert topic.retention == timedelta(days=7)
        assert settings.dlq_topic("orders.created") == "orders.dead"
        assert settings.dlq_topic("other") == "other.dlq"
        assert topic.policy is not None and topic.policy.max_attempts == 10
        assert topic.policy.retry_on == (ConnectionError,)
        import json

        assert json.JSONDecodeError in topic.policy.dead_on and ValueError in topic.policy.dead_on
        assert settings.redact == ("password", "*.secret")
        assert settings.sections["api"] == {"max_page": 200}

    def test_yaml_works_too(self, tmp_path: Path) -> None:
        """A .yaml file is read like the TOML one."""
        path = write(
            tmp_path, "policy:\n  max_attempts: 7\ntopics:\n  a:\n    retention: 1h\n", "r.yaml"
        )
        settings = Settings.load(path)
        assert settings.policy is not None and settings.policy.max_attempts == 7
        assert settings.retention("a") == timedelta(hours=1)

    def test_environment_overrides_the_file(self, tmp_path: Path) -> None:
        """REDRIVE_* variables win over the file."""
        env = {"REDRIVE_STORE_URL": "sqlite:///other.db", "REDRIVE_MAX_ATTEMPTS": "9"}
        settings = Settings.load(write(tmp_path, TOML), environ=env)
        assert settings.store_url == "sqlite:///other.db"
        assert settings.policy is not None and settings.policy.max_attempts == 9
        assert settings.policy.initial_delay == 0.5

    def test_config_path_from_environment(self, tmp_path: Path) -> None:
        """REDRIVE_CONFIG names the file when no path is given."""
        path = write(tmp_path, 'store_url = "sqlite:///x.db"\n')
        assert Settings.load(environ={"REDRIVE_CONFIG": str(path)}).store_url == "sqlite:///x.db"

    def test_precedence_of_policies(self, tmp_path: Path) -> None:
        """Handler config beats handler code beats topic config beats defaults."""
        settings = Settings.load(write(tmp_path, TOML))
        code = RetryPolicy(max_attempts=6)
        assert settings.policy_for("orders.created", "app.send_receipt", code).max_attempts == 1
        assert settings.policy_for("orders.created", "other", code).max_attempts == 6
        assert settings.policy_for("orders.created", "other").max_attempts == 10
        assert settings.policy_for("payments", "other").max_attempts == 4
        assert Settings().policy_for("t", "h", fallback=code) is code


class TestErrors:
    @pytest.mark.parametrize(
        ("text", "key", "expected"),
        [
            ("[policy]\nmax_attempts = 'five'\n", "policy.max_attempts", "an integer >= 1"),
            ("[policy]\ninitial_delay = 'soon'\n", "policy.initial_delay", "a duration"),
            ("[policy]\njitter = 'lots'\n", "policy.jitter", "'full', 'equal' or 'none'"),
            ("[policy]\nretry_on = ['nope.Missing']\n", "policy.retry_on[0]", "an importable"),
            ("[policy]\nmax_atempts = 3\n", "policy.max_atempts", "one of"),
            ("[topics.a]\nretention = -1\n", "topics.a.retention", "a duration"),
            ("[topics.a]\ncolour = 'red'\n", "topics.a.colour", "one of"),
            ("topics = 3\n", "topics", "a table"),
            ("redact = 'password'\n", "redact", "a list of field patterns"),
            ("redact = ['password', '.']\n", "redact[1]", "a field name or dotted path"),
        ],
    )
    def test_bad_values_name_file_key_and_expectation(
        self, tmp_path: Path, text: str, key: str, expected: str
    ) -> None:
        """Each bad value is reported with the file, the key and what was expected."""
        path = write(tmp_path, text)
        with pytest.raises(ConfigError) as caught:
            Settings.load(path)
        message = str(caught.value)
        assert str(path) in message and key in message and expected in message

    def test_broken_syntax_names_the_file(self, tmp_path: Path) -> None:
        """A file that does not parse is reported with its name and the parser's reason."""
        path = write(tmp_path, "[policy\n")
        with pytest.raises(ConfigError, match=r"redrive\.toml: not valid TOML"):
            Settings.load(path)

    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing file is a ConfigError, not an OSError."""
        with pytest.raises(ConfigError, match="cannot read"):
            Settings.load(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("15m", 900),
        ("2h", 7200),
        ("7d", 604800),
        ("1w", 604800),
        ("250ms", 0.25),
        (5, 5),
    ],
)
def test_parse_duration(text: str | int, seconds: float) -> None:
    """Durations accept the usual units."""
    assert parse_duration(text).total_seconds() == seconds
