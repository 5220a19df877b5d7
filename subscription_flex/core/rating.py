"""Usage rating: from an aggregated quantity to an amount, with a readable breakdown.

Rules, written down once:

* the period's quantity is first rounded, half away from zero, to the quantity precision
  the invoice line carries (``quantity_decimals``: Odoo's *Product Unit of Measure*
  precision), so the quantity rated is the one the invoice shows;
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
* arithmetic in :class:`~decimal.Decimal`; the amount of each part (a tier, or the one
  line of the other models: units × unit price + flat fee) is rounded once with
  :func:`core.money.round_money` (half away from zero, currency decimals) and the rated
  amount is the sum of the rounded parts, so the parts a label shows add up to it.
"""

import math
from collections import namedtuple
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


# One priced part of a rating: ``amount`` = ``quantity`` × ``unit_price`` + ``flat_fee``,
# rounded to the currency.
Part = namedtuple("Part", "label quantity unit_price flat_fee amount")


@dataclass
class Rating:
    quantity: Decimal  # quantity of the period as rated (rounded to quantity_decimals)
    billable: Decimal  # after the included quantity
    amount: Decimal  # rounded to the currency: the sum of the parts, or the minimum
    parts: list = field(default_factory=list)  # [Part]
    minimum_applied: bool = False
    measured: Decimal | None = None  # the aggregated quantity before rounding


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
    quantity,
    model,
    unit_price=0,
    decimals=2,
    package_size=1,
    tiers=(),
    included=0,
    minimum=0,
    quantity_decimals=None,
):
    """Rate ``quantity`` (the period's aggregate); ``decimals``: the currency's,
    ``quantity_decimals``: the precision quantities are rounded to first (None: as is)."""
    if model not in PRICING_MODELS:
        raise ValueError(f"unknown pricing model {model!r}")
    measured = to_decimal(quantity)
    quantity = measured if quantity_decimals is None else round_money(measured, quantity_decimals)
    included = to_decimal(included)
    billable = max(quantity - included, Decimal(0))
    unit_price = to_decimal(unit_price)
    parts = []

    def add(label, units, price, fee=Decimal(0)):
        parts.append(Part(label, units, price, fee, round_money(units * price + fee, decimals)))

    if model == "per_unit":
        if billable:
            add("", billable, unit_price)
    elif model == "package":
        size = to_decimal(package_size)
        if size <= 0:
            raise ValueError("a package size must be positive")
        packages = Decimal(math.ceil(billable / size)) if billable else Decimal(0)
        if packages:
            add(f"{packages} × {_fmt(size)}", packages, unit_price)
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
        if model == "graduated":
            lower = Decimal(0)
            for tier in tiers:
                if billable <= lower:
                    break
                upper = billable if tier.up_to is None else min(billable, tier.up_to)
                add(_tier_label(lower, tier.up_to), upper - lower, tier.unit_price, tier.flat_fee)
                if tier.up_to is None:
                    break
                lower = tier.up_to
        elif billable:  # volume
            lower = Decimal(0)
            for tier in tiers:
                if tier.up_to is None or billable <= tier.up_to:
                    add(_tier_label(lower, tier.up_to), billable, tier.unit_price, tier.flat_fee)
                    break
                lower = tier.up_to
            else:
                raise ValueError("the quantity exceeds the last tier")
    total = sum((part.amount for part in parts), Decimal(0))
    minimum = round_money(minimum, decimals)
    minimum_applied = bool(minimum) and total < minimum
    if minimum_applied:
        total = minimum
    return Rating(
        quantity, billable, round_money(total, decimals), parts, minimum_applied, measured
    )


def _tier_label(lower, upper):
    if upper is None:
        return f"{_fmt(lower)}+"
    return f"{_fmt(lower)}–{_fmt(upper)}"


def _fmt(number):
    number = to_decimal(number)
    return f"{number.normalize():,f}" if number != number.to_integral() else f"{int(number):,}"


def describe(rating, included=0, unit_label="", decimals=2):
    """One line a customer can check by hand, e.g. ``12,500 calls, 1,000 included:
    0–10,000: 10,000 × 0.010 = 100.00; 10,000+: 1,500 × 0.008 = 12.00``: the quantity
    rated (and the measured one when rounding changed it), then each part, whose amounts
    add up to the rated amount."""
    text = f"{_fmt(rating.quantity)}{' ' + unit_label if unit_label else ''}"
    if rating.measured is not None and rating.measured != rating.quantity:
        text += f" ({_fmt(rating.measured)} measured)"
    if to_decimal(included):
        text += f", {_fmt(included)} included"
    chunks = []
    for part in rating.parts:
        chunk = f"{_fmt(part.quantity)} × {part.unit_price.normalize():f}"
        if part.flat_fee:
            chunk += f" + {round_money(part.flat_fee, decimals)}"
        chunk += f" = {part.amount}"
        chunks.append(f"{part.label}: {chunk}" if part.label else chunk)
    if chunks:
        text += ": " + "; ".join(chunks)
    if rating.minimum_applied:
        text += f" (minimum charge {rating.amount})"
    return text
