"""`AdmittedRate`: configured, announced and learned rates; AIMD on the admitted rate."""

from __future__ import annotations

import pytest

from datamill.scheduler.rate import MIN_RATE, AcceptanceMeter, AdmittedRate


def took(rate: AdmittedRate, per_second: float, *, start: float, seconds: float) -> None:
    """The provider took ``per_second`` calls a second for ``seconds`` from ``start``."""
    n = int(per_second * seconds)
    for i in range(n):
        rate.on_sent(start + i / per_second)


# -- the meter --------------------------------------------------------------------------------


def test_the_meter_counts_calls_over_a_window():
    meter = AcceptanceMeter()
    for i in range(100):
        meter.add(10.0 + i * 0.05)  # 20 a second from t=10 to t=15
    assert meter.rate(15.0, 1.0) == pytest.approx(20, abs=2)
    assert meter.rate(15.0, 5.0) == pytest.approx(20, abs=1)
    assert meter.rate(100.0, 1.0) == 0.0


def test_the_meter_forgets_old_slots():
    meter = AcceptanceMeter()
    for i in range(1000):
        meter.add(i * 0.1)
    assert len(meter._slots) <= 301


# -- sources ----------------------------------------------------------------------------------


def test_a_configured_rpm_is_the_rate_and_its_ceiling():
    rate = AdmittedRate(configured_rpm=600, now=0.0)
    assert (rate.rate, rate.ceiling, rate.source) == (10.0, 10.0, "configured")
    assert rate.rpm == 600


def test_no_configuration_means_no_rate_until_something_teaches_one():
    rate = AdmittedRate(configured_rpm=None, now=0.0)
    assert (rate.rate, rate.ceiling, rate.source, rate.rpm) == (None, None, None, None)
    assert not rate.maybe_grow(100.0, waiting=True)


def test_an_announced_limit_sets_the_rate():
    rate = AdmittedRate(configured_rpm=None, now=0.0)
    assert rate.on_announced(3000, 1.0)
    assert (rate.rate, rate.ceiling, rate.source) == (50.0, 50.0, "headers")
    assert not rate.on_announced(3000, 2.0)  # the same figure again changes nothing


def test_a_configured_rpm_wins_over_an_announced_one():
    rate = AdmittedRate(configured_rpm=600, now=0.0)
    assert not rate.on_announced(3000, 1.0)
    assert (rate.rate, rate.ceiling, rate.source) == (10.0, 10.0, "configured")
    assert rate.announced == 50.0


def test_a_lower_announcement_lowers_a_learned_rate_and_a_higher_one_lifts_the_ceiling():
    rate = AdmittedRate(configured_rpm=None, now=0.0)
    rate.on_announced(3000, 0.0)
    assert rate.on_announced(1200, 1.0)
    assert rate.rate == 20.0
    assert not rate.on_announced(6000, 2.0)  # the rate grows toward it step by step
    assert rate.ceiling == 100.0


# -- decrease ---------------------------------------------------------------------------------


def test_a_429_cuts_the_rate_by_a_tenth():
    rate = AdmittedRate(configured_rpm=600, now=0.0)
    took(rate, 10, start=0.0, seconds=5)
    assert rate.on_rate_limited(5.0, sent_at=5.0)
    assert rate.rate == pytest.approx(9.0)
    assert rate.source == "configured"  # still paced under the configured ceiling


def test_a_429_for_a_call_sent_before_the_last_cut_does_not_cut_again():
    rate = AdmittedRate(configured_rpm=600, now=0.0)
    took(rate, 10, start=0.0, seconds=5)
    rate.on_rate_limited(5.0, sent_at=4.99)
    # The calls in flight when the limit was hit come back 429 too: one cut for all of them.
    assert not rate.on_rate_limited(5.2, sent_at=4.995)
    assert rate.rate == pytest.approx(9.0)
    # A call sent after the cut that still meets a 429 cuts again.
    took(rate, 10, start=5.0, seconds=0.3)
    assert rate.on_rate_limited(5.3, sent_at=5.1)
    assert rate.rate == pytest.approx(8.1)


def test_a_cut_goes_down_to_what_the_provider_took_but_at_most_by_half():
    rate = AdmittedRate(configured_rpm=6000, now=0.0)  # 100/s told, the provider takes 70/s
    took(rate, 70, start=0.0, seconds=5)
    rate.on_rate_limited(5.0, sent_at=5.0)
    assert rate.rate == pytest.approx(70, abs=2)

    rate = AdmittedRate(configured_rpm=6000, now=0.0)  # the provider takes 10/s
    took(rate, 10, start=0.0, seconds=5)
    rate.on_rate_limited(5.0, sent_at=5.0)
    assert rate.rate == pytest.approx(50.0)


def test_the_first_429_sets_the_rate_under_what_the_provider_took_in_the_last_second():
    rate = AdmittedRate(configured_rpm=None, now=0.0)
    took(rate, 50, start=9.0, seconds=1)
    assert rate.on_rate_limited(10.0, sent_at=10.0)
    assert rate.source == "429s"
    assert rate.rate == pytest.approx(45, abs=1)  # a tenth under it
    assert rate.ceiling is None


def test_the_rate_never_reaches_zero():
    rate = AdmittedRate(configured_rpm=None, now=0.0)
    rate.on_rate_limited(0.0, sent_at=0.0)  # nothing was ever taken
    assert rate.rate == MIN_RATE
    for i in range(1, 100):
        rate.on_rate_limited(float(i * 100), sent_at=float(i * 100))
    assert rate.rate == MIN_RATE


# -- increase ---------------------------------------------------------------------------------


def grow_each_second(rate: AdmittedRate, start: float, seconds: int) -> list[float]:
    rates = []
    for second in range(1, seconds + 1):
        rate.maybe_grow(start + second, waiting=True)
        assert rate.rate is not None
        rates.append(round(rate.rate, 3))
    return rates


def test_quiet_seconds_grow_the_rate_faster_and_faster_up_to_a_tenth():
    rate = AdmittedRate(configured_rpm=None, now=0.0)
    took(rate, 100, start=0.0, seconds=1)
    rate.on_rate_limited(1.0, sent_at=1.0)
    assert rate.rate == pytest.approx(90, abs=1)
    rate.rate, rate.peak = 100.0, None  # no plateau: far under where a 429 came

    rates = grow_each_second(rate, 1.0, 14)

    steps = [round(b / a - 1, 3) for a, b in zip([100.0, *rates], rates, strict=False)]
    assert steps[:5] == [0.01, 0.02, 0.03, 0.04, 0.05]
    assert steps[-3:] == [0.1, 0.1, 0.1]


def test_the_rate_grows_back_to_the_ceiling_and_no_further():
    rate = AdmittedRate(configured_rpm=600, now=0.0)
    took(rate, 10, start=0.0, seconds=1)
    rate.on_rate_limited(1.0, sent_at=1.0)
    rates = grow_each_second(rate, 1.0, 10)
    assert rates[-1] == 10.0
    assert max(rates) == 10.0
    assert not rate.maybe_grow(20.0, waiting=True)


def test_the_rate_grows_once_a_second_and_only_while_calls_wait_for_it():
    rate = AdmittedRate(configured_rpm=600, now=0.0)
    took(rate, 10, start=0.0, seconds=1)
    rate.on_rate_limited(1.0, sent_at=1.0)
    assert not rate.maybe_grow(1.5, waiting=True)  # not a quiet second yet
    assert not rate.maybe_grow(2.5, waiting=False)  # nobody waits: the rate holds nobody back
    assert rate.maybe_grow(2.5, waiting=True)
    assert not rate.maybe_grow(3.0, waiting=True)


def test_any_429_restarts_the_quiet_time():
    rate = AdmittedRate(configured_rpm=600, now=0.0)
    took(rate, 10, start=0.0, seconds=1)
    rate.on_rate_limited(1.0, sent_at=1.0)
    rate.on_rate_limited(1.8, sent_at=0.9)  # no cut (sent before it), but not quiet either
    assert not rate.maybe_grow(2.5, waiting=True)
    assert rate.maybe_grow(2.9, waiting=True)


# -- 429s that come back first ----------------------------------------------------------------


def test_a_429_that_comes_back_before_any_answer_is_not_read_as_nothing_taken():
    # 64 calls sent at once to a provider with a bucket of 50: 14 are answered 429 at once,
    # while the 50 it took are still running (its successes are slow).
    rate = AdmittedRate(configured_rpm=None, now=0.0)
    for i in range(64):
        rate.on_sent(100 + i * 0.0001)
    for i in range(50, 64):
        rate.on_refused(100 + i * 0.0001)
    assert rate.on_rate_limited(100.01, sent_at=100.0063)
    assert rate.rate == pytest.approx(45, abs=3)  # a tenth under the 50 it took
    assert rate.rate > 100 * MIN_RATE


def test_the_rest_of_the_first_wave_refines_the_first_429s_figure():
    # The same wave, but the first 429 is read while the other 13 are still on their way
    # (a busy event loop): the calls still out count as taken, 63 a second. Each 429 of the
    # wave that comes back after it lowers the figure; the whole wave says 50.
    rate = AdmittedRate(configured_rpm=None, now=0.0)
    for i in range(64):
        rate.on_sent(100 + i * 0.0001)
    rate.on_refused(100.0050)
    assert rate.on_rate_limited(100.01, sent_at=100.0050)
    assert rate.rate == pytest.approx(0.9 * 63, abs=3)
    for i in range(51, 64):
        rate.on_refused(100 + i * 0.0001)
        rate.on_rate_limited(100.02, sent_at=100 + i * 0.0001)
    assert rate.rate == pytest.approx(45, abs=3)
    assert rate.peak == pytest.approx(50, abs=3)
    # Once a call sent after it met a 429 (a cut), the wave is over: late 429s of calls
    # sent before that cut change nothing.
    took(rate, 45, start=100.1, seconds=1)
    assert rate.on_rate_limited(101.2, sent_at=101.0)
    cut = rate.rate
    rate.on_refused(100.5)
    assert not rate.on_rate_limited(101.3, sent_at=100.5)
    assert rate.rate == cut


def test_a_provider_that_refused_everything_gets_half_of_what_was_sent():
    rate = AdmittedRate(configured_rpm=None, now=0.0)
    for i in range(20):
        rate.on_sent(i * 0.01)
        rate.on_refused(i * 0.01)
    rate.on_rate_limited(0.2, sent_at=0.19)
    assert rate.rate == pytest.approx(10, abs=1)
    # Later 429s for calls sent after each cut halve it at most, down to the floor.
    for i in range(1, 40):
        rate.on_rate_limited(0.2 + i, sent_at=0.2 + i - 0.5)
    assert rate.rate == MIN_RATE


def test_the_meter_takes_refused_calls_off_by_the_time_they_were_sent():
    meter = AcceptanceMeter()
    for i in range(10):
        meter.add(5.0 + i * 0.1)
    meter.refuse(5.05)
    meter.refuse(5.95)
    meter.refuse(1.0)  # older than anything kept: nothing to take off
    assert meter.sent_rate(6.0, 1.0) == pytest.approx(10, abs=1)
    assert meter.rate(6.0, 1.0) == pytest.approx(8, abs=1)


def test_the_floor_is_climbed_back_from_by_waiting_alone():
    # Whatever cut the rate to its floor, calls waiting for it grow it back with no answer.
    rate = AdmittedRate(configured_rpm=None, now=0.0)
    rate.on_rate_limited(0.0, sent_at=0.0)
    assert rate.rate == MIN_RATE
    rates = grow_each_second(rate, 0.0, 120)
    assert rates[-1] > 50  # from one a minute to more than 50 a second in two minutes


# -- the plateau under the last 429 -----------------------------------------------------------


def test_growth_creeps_just_under_where_the_last_429_came():
    rate = AdmittedRate(configured_rpm=None, now=0.0)
    took(rate, 50, start=0.0, seconds=1)
    rate.on_rate_limited(1.0, sent_at=1.0)  # it took 50 a second: the limit is about there
    assert rate.rate == pytest.approx(45, abs=1)
    rates = grow_each_second(rate, 1.0, 30)
    assert rates[4] == pytest.approx(48, abs=0.5)  # quickly back to just under it...
    assert max(rates) < 51  # ...then a creep of 0.2% a second
    rates = grow_each_second(rate, 31.0, 40)  # after a quiet minute, growth is fast again
    assert rates[-1] > 60


def test_no_plateau_under_an_announced_ceiling():
    rate = AdmittedRate(configured_rpm=None, now=0.0)
    rate.on_announced(3000, 0.0)
    took(rate, 50, start=0.0, seconds=1)
    rate.on_rate_limited(1.0, sent_at=1.0)
    rates = grow_each_second(rate, 1.0, 6)
    assert rates[-1] == 50.0
