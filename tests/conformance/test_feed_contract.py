"""One suite for the ``Feed`` contract (``tickhub.feeds.base``), run against every feed: the
simulator on a hand-moved clock, replays of a recorded tick file and of a minute-bar file, and
Kite on the local exchange emulator.

What every feed promises the ingest: ``status()`` says STARTING before ``run``; every state change
is reported through ``on_status`` (so the state the feed is in when a tick arrives is the last one
reported, and it is LIVE); ticks name instruments of the registry by symbol and token, carry
aware exchange timestamps in IST, positive prices and a day volume that never goes back within a
day; cancelling ``run`` ends it promptly, reports STOPPED and leaves no task of the feed behind;
``subscribe``/``unsubscribe`` are accepted while running, and a feed that honours them (Kite)
streams exactly what is subscribed. Nothing sleeps to synchronise: the simulator's clock is
stepped, the other feeds are awaited tick by tick, all within generous bounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from tests.fakes import FeedRecorder, SteppingClock
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.model import IST, FeedState, FeedStatus, Tick
from tickhub.devtools.kite_emulator import KiteEmulator
from tickhub.feeds.base import Feed
from tickhub.feeds.kite.client import KiteFeed
from tickhub.feeds.replay.feed import ReplayFeed
from tickhub.feeds.sim import SimFeed
from tickhub.runtime.clock import ManualClock

DATA = Path(__file__).resolve().parent.parent / "data" / "replay"
REGISTRY = InstrumentRegistry.bundled().subset(["RELIANCE", "INFY", "TCS", "NIFTY 50"])
RELIANCE, INFY, TCS, NIFTY = (REGISTRY.resolve(s) for s in ("RELIANCE", "INFY", "TCS", "NIFTY 50"))
MONDAY_OPEN = datetime(2025, 1, 27, 9, 15, tzinfo=IST)
IST_OFFSET = timedelta(hours=5, minutes=30)
ENOUGH = 12  # ticks a test waits for; the smallest source (the tick file) has 17
BOUND = 20.0  # seconds; generous for a loaded machine, never reached when things work


@dataclass
class Case:
    """One feed under test and how to make it progress."""

    feed: Feed
    # Make the feed produce more (the simulator: step its clock; the others: the next event).
    pump: Callable[[FeedRecorder], Awaitable[None]]
    # Whether the feed streams only what is subscribed (else it streams everything).
    honours_subscriptions: bool = False


async def _next_event(recorder: FeedRecorder) -> None:
    await recorder.changed()


def _sim() -> Case:
    clock = SteppingClock(MONDAY_OPEN)
    feed = SimFeed(list(REGISTRY), clock=clock, speed=60.0, seed=3)

    async def step(_: FeedRecorder) -> None:
        await clock.step(1.0)

    return Case(feed, step)


def _replay_ticks() -> Case:
    feed = ReplayFeed(DATA / "ticks_sample.csv", REGISTRY, speed=None, clock=ManualClock())
    return Case(feed, _next_event)


def _replay_bars() -> Case:
    # Friday's last bars and Monday's first: the day volume restarts across the weekend.
    feed = ReplayFeed(
        DATA / "reliance_1m.csv", REGISTRY, speed=None, symbol="RELIANCE", clock=ManualClock()
    )
    return Case(feed, _next_event)


def _kite(emulator: KiteEmulator) -> Case:
    feed = KiteFeed(
        REGISTRY,
        api_key="test_key",
        access_token="test_token",
        url=emulator.url,
        stale_after=5.0,
        backoff_initial=0.05,
        backoff_max=0.5,
        market_hours=lambda now: True,
        rng=random.Random(7),
    )
    feed.subscribe([RELIANCE, NIFTY])  # what some client wants before the feed starts
    return Case(feed, _next_event, honours_subscriptions=True)


FEEDS = ("sim", "replay-ticks", "replay-bars", "kite")
FILTERING = ("kite",)
"""The feeds that stream only the instruments subscribed (the others stream their universe)."""


@contextlib.asynccontextmanager
async def _opened(name: str) -> AsyncIterator[Case]:
    if name != "kite":
        yield {"sim": _sim, "replay-ticks": _replay_ticks, "replay-bars": _replay_bars}[name]()
        return
    emulator = KiteEmulator(REGISTRY, speed=60.0, heartbeat_interval=0.2, start=MONDAY_OPEN)
    await emulator.start()
    try:
        yield _kite(emulator)
    finally:
        await emulator.stop()


@pytest.fixture(params=FEEDS)
async def case(request: pytest.FixtureRequest) -> AsyncIterator[Case]:
    async with _opened(request.param) as opened:
        assert opened.honours_subscriptions == (request.param in FILTERING)
        yield opened


@pytest.fixture(params=FILTERING)
async def filtering_case(request: pytest.FixtureRequest) -> AsyncIterator[Case]:
    async with _opened(request.param) as opened:
        yield opened


class Run:
    """A running feed: its recorder, what was reported when each tick came, and its task."""

    def __init__(self, case: Case) -> None:
        self.case = case
        self.recorder = FeedRecorder(timeout=BOUND)
        # (state reported last, state the feed says it is in) at each tick
        self.at_tick: list[tuple[FeedState | None, FeedState]] = []
        self.task: asyncio.Task[None] | None = None

    def on_tick(self, tick: Tick) -> None:
        reported = self.recorder.statuses[-1].state if self.recorder.statuses else None
        self.at_tick.append((reported, self.case.feed.status().state))
        self.recorder.on_tick(tick)

    def on_status(self, status: FeedStatus) -> None:
        self.recorder.on_status(status)

    def start(self) -> None:
        self.task = asyncio.create_task(
            self.case.feed.run(self.on_tick, self.on_status), name="feed-under-test"
        )

    async def until(self, predicate: Callable[[], bool], what: str) -> None:
        """Pump the feed until ``predicate`` holds, within ``BOUND`` seconds."""
        try:
            async with asyncio.timeout(BOUND):
                while not predicate():
                    assert self.task is not None and not self.task.done(), "run() ended early"
                    await self.case.pump(self.recorder)
        except TimeoutError:
            states = [s.state.value for s in self.recorder.statuses]
            raise AssertionError(f"timed out waiting for {what}; states: {states}") from None

    async def ticks(self, count: int, symbol: str | None = None) -> list[Tick]:
        def enough() -> bool:
            return sum(1 for t in self.recorder.ticks if symbol in (None, t.symbol)) >= count

        await self.until(enough, f"{count} ticks of {symbol or 'any symbol'}")
        return list(self.recorder.ticks)

    async def cancel(self) -> None:
        assert self.task is not None
        self.task.cancel()
        async with asyncio.timeout(BOUND):
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        assert self.task.cancelled(), "run() must end by re-raising the cancellation"


@contextlib.asynccontextmanager
async def running(case: Case) -> AsyncIterator[Run]:
    run = Run(case)
    run.start()
    try:
        yield run
    finally:
        if run.task is not None and not run.task.done():
            await run.cancel()


def _per_day(ticks: list[Tick]) -> Iterator[list[Tick]]:
    days: dict[tuple[str, date], list[Tick]] = defaultdict(list)
    for t in ticks:
        days[(t.symbol, t.timestamp.astimezone(IST).date())].append(t)
    yield from days.values()


# --- the contract -------------------------------------------------------------------------------


def test_a_feed_has_a_name_and_is_starting_before_it_runs(case: Case) -> None:
    assert case.feed.name and isinstance(case.feed.name, str)
    assert case.feed.status().state is FeedState.STARTING


async def test_every_state_change_is_reported_and_ticks_come_while_live(case: Case) -> None:
    async with running(case) as run:
        await run.ticks(ENOUGH)
    assert run.recorder.statuses, "no status reported"
    assert run.at_tick, "no tick"
    for reported, actual in run.at_tick:
        assert reported is actual, "the feed changed state without reporting it"
    assert run.at_tick[0][0] is FeedState.LIVE
    assert {actual for _, actual in run.at_tick} == {FeedState.LIVE}


async def test_ticks_name_registry_instruments_in_ist_with_positive_prices(case: Case) -> None:
    async with running(case) as run:
        ticks = await run.ticks(ENOUGH)
    for t in ticks:
        instrument = REGISTRY.get(t.symbol)
        assert instrument is not None, f"{t.symbol!r} is not in the registry"
        assert t.instrument_token == instrument.instrument_token
        assert t.tradable is instrument.tradable
        assert t.timestamp.tzinfo is not None, "naive timestamp"
        assert t.timestamp.utcoffset() == IST_OFFSET, f"not IST: {t.timestamp.isoformat()}"
        assert t.price > 0
        assert t.volume >= 0
        if t.low > 0 and t.high > 0:
            assert t.low <= t.price <= t.high, (t.low, t.price, t.high)


async def test_day_volume_never_goes_back_within_a_day(case: Case) -> None:
    async with running(case) as run:
        ticks = await run.ticks(ENOUGH)
    for day in _per_day(ticks):
        volumes = [t.volume for t in day]
        assert volumes == sorted(volumes), f"{day[0].symbol}: volume went back: {volumes}"
        stamps = [t.timestamp for t in day]
        assert stamps == sorted(stamps), f"{day[0].symbol}: time went back"


async def test_cancelling_run_ends_it_reports_stopped_and_leaves_no_task(case: Case) -> None:
    before = asyncio.all_tasks()
    async with running(case) as run:
        await run.ticks(1)
        await run.cancel()
    assert run.recorder.statuses[-1].state is FeedState.STOPPED
    assert case.feed.status().state is FeedState.STOPPED
    left = [
        t
        for t in asyncio.all_tasks() - before
        if not t.done() and _is_feed_task(t) and t is not asyncio.current_task()
    ]
    assert left == [], f"tasks left behind: {left}"


async def test_subscribe_and_unsubscribe_are_accepted_while_running(case: Case) -> None:
    async with running(case) as run:
        await run.ticks(1)
        state = case.feed.status().state
        case.feed.subscribe([TCS, INFY])
        case.feed.unsubscribe([TCS])
        case.feed.unsubscribe([TCS])  # more releases than wants: no error
        assert case.feed.status().state is state
        if case.pump is not _next_event or case.honours_subscriptions:
            n = len(run.recorder.ticks)
            await run.ticks(n + 1)  # and it keeps streaming
        assert run.task is not None and not run.task.done()


async def test_a_feed_that_honours_subscriptions_streams_exactly_those(
    filtering_case: Case,
) -> None:
    case = filtering_case
    async with running(case) as run:
        await run.ticks(3, "RELIANCE")
        await run.ticks(1, "NIFTY 50")
        assert {t.symbol for t in run.recorder.ticks} == {"RELIANCE", "NIFTY 50"}
        case.feed.unsubscribe([RELIANCE])
        case.feed.subscribe([INFY])
        await run.ticks(5, "INFY")
        ticks = list(run.recorder.ticks)
    first_infy = next(i for i, t in enumerate(ticks) if t.symbol == "INFY")
    # Upstream handles requests in order: no RELIANCE once INFY (asked for after) streams.
    assert "RELIANCE" not in {t.symbol for t in ticks[first_infy:]}
    assert "NIFTY 50" in {t.symbol for t in ticks[first_infy:]}


def _is_feed_task(task: asyncio.Task[object]) -> bool:
    """Whether a task may be the feed's: every task but the upstream's own (the emulator and the
    server side of its WebSocket library, which finish closing on their own schedule)."""
    code = getattr(task.get_coro(), "cr_code", None)
    filename = code.co_filename.replace("\\", "/") if code is not None else ""
    return not filename.endswith(("/kite_emulator.py", "/asyncio/server.py"))
