"""Usage rating: from an aggregated quantity to an amount, with a readable breakdown.

Rules, written down once:

* the *included* quantity (free allowance of the period) is deducted first; prices and
  tier boundaries apply to the billable remainder;
* ``per_unit``: billable × unit price;
* ``package``: every started package of ``package_size`` units costs the unit price
  (ceil(billable / size) × price);
* ``graduated``: each tier prices the units that fall in it (first 1,000 at 0.010, the next
  9,000 at 0.008, ...), plus each reached tier's flat fee;
* ``volume``: every billable unit costs the price of the tier the total falls in, plus
  that tier's flat fee;
* the *minimum charge* of the period applies when the rated amount is below it, usage or not;
* arithmetic in :class:`~decimal.Decimal`, rounded once at the end with
  :func:`core.money.round_money` (half away from zero, currency decimals).
"""

import math
from dataclasses import dataclass, field
from decimal import Decimal

from .money import round_money, to_decimal

AGGREGATIONS = ("sum", "max", "count", "unique", "last")
PRICING_MODELS = ("per_unit", "package", "graduated", "volume")


@dataclass(frozen=True)
class Tier:
    up_to: Decimal | None  # inclusive upper bound in billable units; None = no bound
    unit_price: Decimal
    flat_fee: Decimal = Decimal(0)


@dataclass
class Rating:
    quantity: Decimal  # aggregated quantity of the period
    billable: Decimal  # after the included quantity
    amount: Decimal  # rounded to the currency
    parts: list = field(default_factory=list)  # (label, quantity, unit_price, amount)
    minimum_applied: bool = False


def aggregate(events, aggregation):
    """Aggregate ``events`` — ``(event_time, quantity, unique_value)`` tuples — the way the
    SQL aggregation of :mod:`flex.usage` does (used for small sets such as late events)."""
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregation!r}")
    events = list(events)
    if not events:
        return Decimal(0)
    if aggregation == "sum":
        return sum((to_decimal(q) for _t, q, _u in events), Decimal(0))
    if aggregation == "max":
        return max(to_decimal(q) for _t, q, _u in events)
    if aggregation == "count":
        return Decimal(len(events))
    if aggregation == "unique":
        return Decimal(len({u for _t, _q, u in events if u not in (None, "")}))
    # last: the most recent event wins; ties broken by the order given (last one).
    latest = max(range(len(events)), key=lambda i: (events[i][0], i))
    return to_decimal(events[latest][1])


def _check_tiers(tiers):
    if not tiers:
        raise ValueError("a tiered price needs at least one tier")
    bounds = [t.up_to for t in tiers]
    if any(b is None for b in bounds[:-1]):
        raise ValueError("only the last tier may be unbounded")
    finite = [b for b in bounds if b is not None]
    if finite != sorted(finite) or len(set(finite)) != len(finite):
        raise ValueError("tier bounds must increase")


def rate(
    quantity, model, unit_price=0, decimals=2, package_size=1, tiers=(), included=0, minimum=0
):
    if model not in PRICING_MODELS:
        raise ValueError(f"unknown pricing model {model!r}")
    quantity = to_decimal(quantity)
    included = to_decimal(included)
    billable = max(quantity - included, Decimal(0))
    unit_price = to_decimal(unit_price)
    parts = []
    if model == "per_unit":
        total = billable * unit_price
        if billable:
            parts.append(("", billable, unit_price, total))
    elif model == "package":
        size = to_decimal(package_size)
        if size <= 0:
            raise ValueError("a package size must be positive")
        packages = Decimal(math.ceil(billable / size)) if billable else Decimal(0)
        total = packages * unit_price
        if packages:
            parts.append((f"{packages} × {size}", packages, unit_price, total))
    else:
        tiers = [
            Tier(
                None if t.up_to is None else to_decimal(t.up_to),
                to_decimal(t.unit_price),
                to_decimal(t.flat_fee),
            )
            for t in tiers
        ]
        _check_tiers(tiers)
        total = Decimal(0)
        if model == "graduated":
            lower = Decimal(0)
            for tier in tiers:
                if billable <= lower:
                    break
                upper = billable if tier.up_to is None else min(billable, tier.up_to)
                units = upper - lower
                amount = units * tier.unit_price + tier.flat_fee
                parts.append((_tier_label(lower, tier.up_to), units, tier.unit_price, amount))
                total += amount
                if tier.up_to is None:
                    break
                lower = tier.up_to
        elif billable:  # volume
            lower = Decimal(0)
            for tier in tiers:
                if tier.up_to is None or billable <= tier.up_to:
                    total = billable * tier.unit_price + tier.flat_fee
                    parts.append((_tier_label(lower, tier.up_to), billable, tier.unit_price, total))
                    break
                lower = tier.up_to
            else:
                raise ValueError("the quantity exceeds the last tier")
    minimum = to_decimal(minimum)
    minimum_applied = bool(minimum) and total < minimum
    if minimum_applied:
        total = minimum
    return Rating(quantity, billable, round_money(total, decimals), parts, minimum_applied)


def _tier_label(lower, upper):
    if upper is None:
        return f"{_fmt(lower)}+"
    return f"{_fmt(lower)}–{_fmt(upper)}"


def _fmt(number):
    number = to_decimal(number)
    return f"{number.normalize():f}" if number != number.to_integral() else f"{int(number):,}"


def describe(rating, included=0, unit_label="", decimals=2):
    """One line a customer can check by hand, e.g. ``12,500 calls, 1,000 included:
    0–10,000: 10,000 × 0.010 = 100.00; 10,000+: 1,500 × 0.008 = 12.00``."""
    text = f"{_fmt(rating.quantity)}{' ' + unit_label if unit_label else ''}"
    if to_decimal(included):
        text += f", {_fmt(included)} included"
    chunks = []
    for label, units, price, amount in rating.parts:
        chunk = f"{_fmt(units)} × {price.normalize():f} = {round_money(amount, decimals)}"
        chunks.append(f"{label}: {chunk}" if label else chunk)
    if chunks:
        text += ": " + "; ".join(chunks)
    if rating.minimum_applied:
        text += f" (minimum charge {rating.amount})"
    return text
