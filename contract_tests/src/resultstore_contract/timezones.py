"""Part of the suite under a local time zone that is not UTC.

A test machine on UTC hides every mix-up of local and universal time: a
``datetime.fromtimestamp`` without a zone, a naive ``datetime.now()`` stored
as UTC, a SQL ``datetime('now', 'localtime')``, a driver that hands back
naive local datetimes. These checks set ``TZ`` (with :func:`time.tzset`) to
zones east and west of UTC with uneven offsets, one with daylight saving
time, and restore the zone afterwards. The zones are POSIX ``TZ`` rules, so
they need no time zone database on the machine.

``date_done`` must come back as the same instant, to the microsecond, and
expiry must count the store's own seconds, whatever the local zone.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from collections.abc import Callable, Iterator

import pytest
from resultstore import Capability, ResultStore, State
from resultstore.concepts.models import TaskResult, utcnow

from resultstore_contract.machine import run_machine
from resultstore_contract.support import ContractBase, Expiring, IdFactory, StoreFactory

__all__ = ["LOCAL_ZONES", "TimezoneContract", "local_zone"]

#: POSIX TZ rules by name: UTC+05:45 (no DST), and UTC-03:30 with DST (Newfoundland's rule).
LOCAL_ZONES: dict[str, str] = {
    "east+0545": "XNPT-5:45",
    "west-0330-dst": "XNST+3:30XNDT,M3.2.0,M11.1.0",
}

_EAST = dt.timezone(dt.timedelta(hours=5, minutes=45))
_WEST = dt.timezone(dt.timedelta(hours=-3, minutes=-30))


def _moments() -> list[dt.datetime]:
    """Instants that break naive conversions: DST edges in the west zone, leap day, epoch."""
    utc = dt.UTC
    return [
        dt.datetime(2024, 5, 17, 12, 30, 45, 123456, tzinfo=utc),
        dt.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=_EAST),
        # 02:00 local in the west zone on its DST days: skipped in spring, repeated in autumn.
        dt.datetime(2024, 3, 10, 5, 29, 59, 999999, tzinfo=utc),
        dt.datetime(2024, 3, 10, 5, 30, 0, 1, tzinfo=utc),
        dt.datetime(2024, 11, 3, 1, 30, 0, 500000, tzinfo=_WEST),
        dt.datetime(2024, 11, 3, 4, 30, 0, 500000, tzinfo=utc),
        dt.datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=utc),
        dt.datetime(2099, 12, 31, 23, 59, 59, 999999, tzinfo=_WEST),
    ]


@contextlib.contextmanager
def local_zone(rule: str) -> Iterator[None]:
    """Set the local time zone to the POSIX ``rule`` (``TZ``, ``time.tzset()``), then restore it."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = rule
    time.tzset()
    try:
        assert time.timezone != 0, f"TZ={rule!r} did not take effect"
        yield
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()


def _same_instant(got: dt.datetime | None, sent: dt.datetime | None, where: str) -> None:
    assert got is not None, f"{where}: date_done came back empty"
    assert sent is not None
    assert got.utcoffset() is not None, f"{where}: date_done came back naive ({got!r})"
    assert got == sent, (
        f"{where}: date_done {sent.isoformat()} came back as {got.isoformat()} "
        f"({(got - sent).total_seconds():+g} s) under local zone TZ={os.environ.get('TZ')!r}"
    )


class TimezoneContract(ContractBase):
    """``date_done`` and expiry under a local time zone that is not UTC."""

    @pytest.fixture(params=sorted(LOCAL_ZONES))
    def local_time_zone(self, request: pytest.FixtureRequest) -> Iterator[str]:
        """Run the test under a non-UTC local zone, then restore the zone it had."""
        with local_zone(LOCAL_ZONES[request.param]):
            yield str(request.param)

    def test_tz_date_done_round_trips_exactly(
        self,
        local_time_zone: str,
        store: ResultStore,
        connect_store: StoreFactory,
        new_id: IdFactory,
    ) -> None:
        sent = [
            TaskResult(new_id(), State.SUCCESS, n, date_done=moment)
            for n, moment in enumerate(_moments())
        ]
        for result in sent[:3]:
            store.store(result)
        store.store_many(sent[3:])
        marked = new_id()
        before = utcnow()
        store.mark_as_done(marked, "now")
        after = utcnow()
        reader = connect_store()
        for result in sent:
            got = reader.get(result.task_id)
            assert got is not None
            _same_instant(got.date_done, result.date_done, "get")
        many = store.get_many([r.task_id for r in sent])
        for result in sent:
            found = many[result.task_id]
            assert found is not None
            _same_instant(found.date_done, result.date_done, "get_many")
        done = reader.get(marked)
        assert done is not None
        assert done.date_done is not None
        assert done.date_done.utcoffset() is not None
        assert before <= done.date_done <= after, (
            f"mark_as_done stamped {done.date_done.isoformat()}, not a moment between "
            f"{before.isoformat()} and {after.isoformat()} (local zone "
            f"TZ={os.environ.get('TZ')!r})"
        )

    def test_tz_group_and_chord_dates_round_trip(
        self, local_time_zone: str, store: ResultStore, new_id: IdFactory
    ) -> None:
        moments = _moments()
        if store.supports(Capability.GROUPS):
            gid = new_id("group")
            saved = store.save_group(gid, [new_id()])
            got = store.get_group(gid)
            assert got is not None
            _same_instant(got.date_done, saved.date_done, "get_group")
        if store.supports(Capability.CHORDS):
            gid = new_id("chord")
            store.set_chord_size(gid, 2)
            parts = [TaskResult(new_id(), State.SUCCESS, i, date_done=moments[i]) for i in (1, 2)]
            store.chord_part_return(gid, 0, parts[0])
            done = store.chord_part_return(gid, 1, parts[1])
            assert done.results is not None
            for part, back in zip(parts, done.results, strict=True):
                _same_instant(back.date_done, part.date_done, "a chord's results")
        if not store.supports(Capability.GROUPS) and not store.supports(Capability.CHORDS):
            pytest.skip("the backend declares neither Capability.GROUPS nor Capability.CHORDS")

    def test_tz_expiry_counts_seconds_not_local_time(
        self,
        local_time_zone: str,
        connect_expiring: Callable[[float], Expiring],
        new_id: IdFactory,
    ) -> None:
        from resultstore_contract.basic import _gone_after, _short_lived

        expiring, expires = _short_lived(connect_expiring)
        store, task_id = expiring.store, new_id()
        store.store(TaskResult(task_id, State.SUCCESS, "fresh"))
        assert store.get(task_id) is not None, (
            f"a result stored with expires={expires} is gone at once under local zone "
            f"TZ={os.environ.get('TZ')!r}: expiry mixes local and universal time"
        )
        if expiring.clock is not None:
            expiring.advance(expires - 2.0)
            assert store.get(task_id) is not None, "expired before its time"
        assert _gone_after(expiring, expires, lambda: store.get(task_id)), (
            f"a result stored with expires={expires} is still readable after it under "
            f"local zone TZ={os.environ.get('TZ')!r}"
        )

    def test_tz_machine_under_a_local_time_zone(
        self, connect_store: StoreFactory, clock_option: str | None
    ) -> None:
        # One zone (the one with daylight saving time): the machine is the slow part.
        with local_zone(LOCAL_ZONES["west-0330-dst"]):
            run_machine(connect_store, clock_option, "json", share=0.1)
