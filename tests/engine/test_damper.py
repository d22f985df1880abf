"""``LossDamper`` (pure): which missing machines keep their units for a while, as tables of observations.

Two rules: most referenced machines missing at once (etcd expired every TTL together), and machines found missing
after an etcd outage, i.e. a streak of failed requests long enough to expire a healthy agent (``outage``), which
a lone failed request is not.
"""

from __future__ import annotations

import pytest

from fleetpy.engine.damper import LossDamper

ABC = {"a", "b", "c"}


# -- mass loss ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("present", "referenced", "held"),
    [
        pytest.param({"a", "b"}, ABC, set(), id="one-of-three-lost-acted-on"),
        pytest.param({"a"}, {"a", "b"}, set(), id="half-lost-acted-on"),
        pytest.param({"a"}, ABC, {"b", "c"}, id="majority-lost-held"),
        pytest.param(set(), {"a"}, {"a"}, id="everything-lost-held"),
        pytest.param(ABC, {"a"}, set(), id="nothing-lost"),
    ],
)
def test_damper(present: set[str], referenced: set[str], held: set[str]) -> None:
    assert LossDamper(30).observe(0.0, present=present, referenced=referenced) == held


def test_damper_holds_only_for_a_while() -> None:
    damper = LossDamper(30)
    assert damper.observe(0.0, present=set(), referenced={"a", "b"}) == {"a", "b"}
    assert damper.observe(29.0, present=set(), referenced={"a", "b"}) == {"a", "b"}
    assert damper.observe(30.0, present=set(), referenced={"a", "b"}) == set()


def test_damper_forgets_machines_that_came_back() -> None:
    damper = LossDamper(30)
    damper.observe(0.0, present=set(), referenced={"a", "b"})
    damper.observe(10.0, present={"a", "b"}, referenced={"a", "b"})
    assert damper.observe(50.0, present=set(), referenced={"a", "b"}) == {"a", "b"}  # a new loss, a new hold


# -- after an etcd outage (hold 30 s, outage 1.5 s: agent_ttl 3 s) ------------------------------------------
@pytest.mark.parametrize(
    ("failures", "recovered", "missing_at", "held"),
    [
        pytest.param([], None, 10.0, False, id="healthy-lone-loss-acted-on"),
        pytest.param([10.0], 11.2, 11.2, False, id="one-timeout-retried-at-once-is-no-outage"),
        pytest.param([10.0, 10.5, 11.0], 11.4, 11.4, False, id="streak-shorter-than-ttl/2-is-no-outage"),
        pytest.param([10.0], 11.5, 11.5, True, id="streak-of-ttl/2-is-an-outage"),
        pytest.param([10.0, 12.0, 14.0], 16.0, 16.0, True, id="long-outage-then-missing-held"),
        pytest.param([10.0, 12.0], 14.0, 43.9, True, id="missing-within-the-hold-after-recovery-held"),
        pytest.param([10.0, 12.0], 14.0, 44.0, False, id="missing-after-the-hold-acted-on"),
        pytest.param([10.0, 12.0], None, 13.0, False, id="outage-not-over-yet-not-counted"),
    ],
)
def test_damper_after_an_outage(failures: list[float], recovered: float | None, missing_at: float,
                                held: bool) -> None:
    damper = LossDamper(30, outage=1.5)
    for at in failures:
        damper.failed(at)
    if recovered is not None:
        damper.succeeded(recovered)
    damper.reset()  # a new term often follows an outage: what was learnt about etcd stays
    assert damper.observe(missing_at, present={"a", "b"}, referenced=ABC) == ({"c"} if held else set())


def test_machine_missing_before_the_outage_is_not_held_after_it() -> None:
    damper = LossDamper(30, outage=1.5)
    assert damper.observe(9.0, present={"a", "b"}, referenced=ABC) == set()  # a lone loss (its units move)
    damper.failed(10.0)
    damper.succeeded(14.0)
    assert damper.observe(14.0, present={"a", "b"}, referenced=ABC) == set()


def test_outage_length_is_from_the_first_failure_to_the_next_success() -> None:
    damper = LossDamper(30, outage=1.5)
    assert damper.succeeded(5.0) is None  # no streak
    damper.failed(10.0)
    damper.failed(11.0)  # the same streak
    assert damper.failing
    assert damper.succeeded(11.4) is None and not damper.failing  # 1.4 s: no outage
    damper.failed(20.0)
    assert damper.succeeded(23.0) == 3.0


def test_a_lone_failure_after_an_outage_does_not_extend_it() -> None:
    """The held window is set by the last outage, not pushed on by later lone failures."""
    damper = LossDamper(30, outage=1.5)
    damper.failed(0.0)
    damper.succeeded(5.0)  # an outage: machines missing in [0, 35) are held
    damper.failed(40.0)
    damper.succeeded(41.0)  # a lone timeout
    assert damper.observe(41.0, present={"a", "b"}, referenced=ABC) == set()
