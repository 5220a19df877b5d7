"""Billing-period arithmetic.

Periods are always computed from an *anchor* date (the start of the first paid
period) and an index, never by adding a delta to the previous period: adding one
month to 31 January gives 28 February, and adding one month again to that would
drift to 28 March. ``anchor + k * delta`` keeps every period on the anchor's day
(31 Jan, 28 Feb, 31 Mar, 30 Apr, ...).

A period is the half-open interval ``[start, end)``; the last *day* of service is
``end - 1 day``. Invoices show inclusive dates, so callers subtract one day when
they display the end.
"""

from dataclasses import dataclass
from datetime import date, timedelta

from dateutil.relativedelta import relativedelta

UNITS = ("day", "week", "month", "year")


def interval_delta(length, unit):
    """``relativedelta`` for ``length`` ``unit``s (``unit`` in :data:`UNITS`)."""
    if unit not in UNITS:
        raise ValueError(f"unknown period unit {unit!r}")
    if length < 0:
        raise ValueError("a period length cannot be negative")
    if unit == "day":
        return relativedelta(days=length)
    if unit == "week":
        return relativedelta(weeks=length)
    if unit == "month":
        return relativedelta(months=length)
    return relativedelta(years=length)


def add_interval(start, length, unit):
    """``start`` moved by ``length`` ``unit``s (0 keeps it)."""
    return start + interval_delta(length, unit)


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # exclusive

    @property
    def last_day(self):
        return self.end - timedelta(days=1)

    @property
    def days(self):
        return (self.end - self.start).days

    def __contains__(self, day):
        return self.start <= day < self.end


def period_at(anchor, interval, unit, index):
    """The ``index``-th period (0-based) of a schedule starting at ``anchor``."""
    if interval <= 0:
        raise ValueError("a billing interval must be at least 1")
    if index < 0:
        raise ValueError("period index must not be negative")
    start = anchor + interval_delta(interval * index, unit)
    end = anchor + interval_delta(interval * (index + 1), unit)
    return Period(start, end)


def period_index(anchor, interval, unit, day):
    """Index of the period of the schedule that contains ``day`` (``day >= anchor``)."""
    if day < anchor:
        raise ValueError("day before the schedule's anchor")
    # Estimate from the average length, then correct: at most a couple of steps.
    approx_days = {"day": 1, "week": 7, "month": 30.436875, "year": 365.2425}[unit] * interval
    index = max(int((day - anchor).days / approx_days) - 1, 0)
    while True:
        period = period_at(anchor, interval, unit, index)
        if day < period.start:
            index -= 1
        elif day >= period.end:
            index += 1
        else:
            return index


def period_containing(anchor, interval, unit, day):
    return period_at(anchor, interval, unit, period_index(anchor, interval, unit, day))


def due_periods(anchor, interval, unit, next_start, today, timing="advance", stop=None):
    """Periods to invoice on ``today``, starting with the one that begins on ``next_start``.

    ``timing`` ``advance``: a period is due on its first day; ``arrears``: the day after
    it ends (its ``end``). ``stop`` (exclusive) ends the schedule: no period starting on
    or after it is due, and the last one is cut at ``stop``.
    """
    if timing not in ("advance", "arrears"):
        raise ValueError(f"unknown invoicing timing {timing!r}")
    result = []
    index = period_index(anchor, interval, unit, next_start)
    period = period_at(anchor, interval, unit, index)
    if period.start != next_start:
        # next_start is not on the schedule (e.g. after a resume): bill the stub up to
        # the schedule's next boundary.
        period = Period(next_start, period.end)
    while True:
        if stop is not None:
            if period.start >= stop:
                break
            if period.end > stop:
                period = Period(period.start, stop)
        due_on = period.start if timing == "advance" else period.end
        if due_on > today:
            break
        result.append(period)
        index += 1
        period = period_at(anchor, interval, unit, index)
    return result


def earliest_end_date(start, today, commitment, notice, anchor=None, interval=None, unit=None):
    """First date (exclusive end of service) a subscription may end if asked ``today``.

    ``commitment`` and ``notice`` are ``(length, unit)`` pairs (length 0 = none).
    The end must be (1) no earlier than the end of the commitment (start + commitment),
    (2) no earlier than ``today`` + notice, and (3) when a billing schedule is given,
    on a period boundary: service already paid for in advance runs to the end of its
    period, so the end is rounded *up* to the next boundary.
    """
    commitment_end = add_interval(start, *commitment)
    notice_end = add_interval(today, *notice)
    end = max(commitment_end, notice_end, today)
    if anchor is not None and end > anchor:
        period = period_containing(anchor, interval, unit, end)
        if period.start != end:
            end = period.end
    return end
