"""RetryPolicy: backoff bounds, classification, decisions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redrive import NonRetriableError, PolicyError, RetryAfter, RetryPolicy
from redrive.models import utcnow
from redrive.policy import backoff

attempts = st.integers(min_value=1, max_value=200)
delays = st.floats(min_value=0, max_value=1e4, allow_nan=False)
multipliers = st.floats(min_value=1, max_value=10, allow_nan=False)
unit = st.floats(min_value=0, max_value=1, allow_nan=False)


class TestBackoff:
    @given(attempts, delays, multipliers, delays, unit)
    def test_full_jitter_stays_within_zero_and_the_cap(
        self, attempt: int, initial: float, multiplier: float, cap: float, r: float
    ) -> None:
        """Full jitter is never negative and never above the capped exponential delay."""
        delay = backoff(attempt, initial=initial, multiplier=multiplier, cap=cap, rand=lambda: r)
        assert 0 <= delay <= min(cap, initial * multiplier ** (attempt - 1)) + 1e-9

    @given(attempts, delays, multipliers, delays, unit)
    def test_equal_jitter_keeps_half(
        self, attempt: int, initial: float, multiplier: float, cap: float, r: float
    ) -> None:
        """Equal jitter waits at least half of the capped delay."""
        base = backoff(attempt, initial=initial, multiplier=multiplier, cap=cap, jitter="none")
        delay = backoff(
            attempt, initial=initial, multiplier=multiplier, cap=cap, jitter="equal", rand=lambda: r
        )
        assert base / 2 - 1e-9 <= delay <= base + 1e-9

    def test_grows_exponentially_until_the_cap(self) -> None:
        """Without jitter the delays are initial * multiplier**n, capped."""
        delays = [backoff(n, initial=1, multiplier=2, cap=10, jitter="none") for n in range(1, 7)]
        assert delays == [1, 2, 4, 8, 10, 10]

    def test_huge_attempt_numbers_do_not_overflow(self) -> None:
        """A very late attempt gets the cap, not an OverflowError."""
        assert backoff(100_000, initial=1, multiplier=10, cap=60, jitter="none") == 60


class TestClassification:
    @pytest.mark.parametrize(
        "error", [NonRetriableError("x"), ValueError(), TypeError(), KeyError("k")]
    )
    def test_default_non_retriable(self, error: Exception) -> None:
        """Programming and data errors go dead at once by default."""
        assert not RetryPolicy().is_retriable(error)

    @pytest.mark.parametrize(
        "error", [ConnectionError(), TimeoutError(), RuntimeError(), OSError()]
    )
    def test_default_retriable(self, error: Exception) -> None:
        """Other errors (outages, timeouts) are retried by default."""
        assert RetryPolicy().is_retriable(error)

    def test_pydantic_validation_error_is_non_retriable(self) -> None:
        """A pydantic ValidationError goes dead at once, without redrive importing pydantic."""
        pytest.importorskip("pydantic")
        from pydantic import BaseModel, ValidationError

        class Order(BaseModel):
            quantity: int

        with pytest.raises(ValidationError) as caught:
            Order.model_validate({"quantity": "many"})
        assert not RetryPolicy().is_retriable(caught.value)

    def test_retry_on_wins_over_dead_on(self) -> None:
        """An error listed in retry_on is retried even if dead_on also matches it."""

        class Flaky(ValueError):
            pass

        assert RetryPolicy(retry_on=(Flaky,)).is_retriable(Flaky())
        assert not RetryPolicy(dead_on=(ConnectionError,)).is_retriable(ConnectionError())


class TestDecide:
    def test_retry_then_exhausted(self) -> None:
        """Attempts below max_attempts retry; the last one goes dead."""
        policy, now = RetryPolicy(max_attempts=3, jitter="none"), utcnow()
        first = policy.decide(1, ConnectionError(), now)
        assert first.retry_at == now + timedelta(seconds=1)
        assert policy.decide(2, ConnectionError(), now).retry_at == now + timedelta(seconds=2)
        last = policy.decide(3, ConnectionError(), now)
        assert last.dead and last.reason == "exhausted"

    def test_non_retriable_is_dead_at_once(self) -> None:
        """A non-retriable error is dead on its first attempt."""
        decision = RetryPolicy(max_attempts=5).decide(1, ValueError("bad"), utcnow())
        assert decision.dead and decision.reason == "non_retriable"

    def test_retry_after_sets_the_delay(self) -> None:
        """RetryAfter(seconds) overrides the backoff."""
        now = utcnow()
        decision = RetryPolicy().decide(1, RetryAfter(42), now)
        assert decision.retry_at == now + timedelta(seconds=42)

    def test_retry_after_still_counts(self) -> None:
        """RetryAfter on the last attempt goes dead like any other error."""
        assert RetryPolicy(max_attempts=2).decide(2, RetryAfter(1), utcnow()).dead

    @pytest.mark.parametrize(
        "fields",
        [{"max_attempts": 0}, {"initial_delay": -1}, {"multiplier": 0.5}, {"jitter": "some"}],
    )
    def test_invalid_policies_are_refused(self, fields: dict[str, object]) -> None:
        """Impossible policies raise PolicyError with a reason."""
        with pytest.raises(PolicyError):
            RetryPolicy(**fields)  # type: ignore[arg-type]

    def test_timeline_sums_the_longest_delays(self) -> None:
        """The timeline lists each retry's longest delay and the running total."""
        timeline = RetryPolicy(
            max_attempts=4, initial_delay=1, multiplier=3, max_delay=5
        ).timeline()
        assert timeline == [(1, 1, 1), (2, 3, 4), (3, 5, 9)]
