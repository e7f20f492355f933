"""``redrive policy show``: merged policies, where each value comes from, every topic."""

from __future__ import annotations

import json

from redrive.config import from_mapping
from tests.cli.cli_support import Cli

CONFIG = (
    '[policy]\ninitial_delay = "10s"\nmax_delay = "2h"\n'
    '[topics."orders.created".policy]\nmax_attempts = 20\n'
    '[topics."emails.sent".policy]\ninitial_delay = "500ms"\n'
)


def test_topic_policy_overrides_only_the_fields_it_sets() -> None:
    """A topic table sets max_attempts; the delays still come from [policy]."""
    settings = from_mapping(
        {
            "policy": {"initial_delay": "10s", "max_delay": "2h"},
            "topics": {"orders.created": {"policy": {"max_attempts": 20}}},
        }
    )
    policy = settings.policy_for("orders.created", "app.h")
    assert (policy.max_attempts, policy.initial_delay, policy.max_delay) == (20, 10.0, 7200.0)
    assert policy.multiplier == 2.0  # built-in


def test_handler_config_overrides_a_code_policy_field_by_field() -> None:
    """A config entry for a handler changes only its fields of the code's policy."""
    from redrive.policy import RetryPolicy

    settings = from_mapping({"handlers": {"app.h": {"policy": {"max_attempts": 9}}}})
    code = RetryPolicy(max_attempts=5, initial_delay=3.0)
    policy = settings.policy_for("t", "app.h", code)
    assert (policy.max_attempts, policy.initial_delay) == (9, 3.0)


def test_show_names_where_each_value_comes_from(cli: Cli) -> None:
    """Each field is labelled topic config, default config or built-in, with units."""
    config = cli.workdir / "redrive.toml"
    config.write_text(CONFIG)
    result = cli("--config", str(config), "policy", "show", "orders.created")
    assert result.exit_code == 0, result.output
    assert "max_attempts: 20  (topic config)" in result.stdout
    assert "initial_delay: 10s  (default config)" in result.stdout
    assert "max_delay: 2.0h  (default config)" in result.stdout
    assert "multiplier: 2  (built-in)" in result.stdout
    assert "policies set in code" in result.stdout
    data = json.loads(
        cli("--config", str(config), "policy", "show", "emails.sent", "--json").stdout
    )
    assert data["sources"]["initial_delay"] == "topic config"
    assert data["policy"]["initial_delay"] == 0.5


def test_show_without_a_topic_lists_every_configured_topic(cli: Cli) -> None:
    """With no topic, policy show prints the default and each configured topic."""
    config = cli.workdir / "redrive.toml"
    config.write_text(CONFIG)
    result = cli("--config", str(config), "policy", "show")
    assert result.exit_code == 0, result.output
    for name in ("(default)", "orders.created", "emails.sent", "500ms"):
        assert name in result.stdout


def test_show_warns_about_an_unknown_topic(cli: Cli) -> None:
    """A topic the config does not name gets a warning, not silent defaults."""
    config = cli.workdir / "redrive.toml"
    config.write_text(CONFIG)
    result = cli("--config", str(config), "policy", "show", "nosuch.topic")
    assert "warning: topic 'nosuch.topic' is not in the config" in result.stdout
