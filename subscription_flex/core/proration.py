"""Day-based proration of mid-period changes.

The rounding rule (also in the README): every amount is computed in ``Decimal`` from the
line's unrounded subtotal (``price × quantity × (1 − discount%)``) times a fraction of
calendar days of the actual period, then rounded **once per line** to the currency's
decimals, half away from zero. Totals are sums of rounded line amounts; taxes are
computed on those amounts by Odoo, as on any invoice line.

A change on day ``D`` of a period ``[start, end)`` leaves ``remaining = end - D`` days of
the ``end - start`` days already billed at the old terms. For each line:

* credit of the unused part of the old terms: ``-old_subtotal × remaining / days``;
* charge of the remaining part of the new terms: ``+new_subtotal × remaining / days``;

each computed in :class:`~decimal.Decimal` from the unrounded subtotal and rounded once
with :func:`core.money.round_money` (half away from zero, so a credit is exactly the
negative of the same charge). Lines are independent: no amount depends on the order in
which lines are processed.
"""

from dataclasses import dataclass
from decimal import Decimal

from .money import round_money, to_decimal


@dataclass(frozen=True)
class Terms:
    price_unit: Decimal
    quantity: Decimal
    discount: Decimal = Decimal(0)

    @property
    def subtotal(self):
        """Unrounded ``price × quantity × (1 − discount%)``."""
        return (
            to_decimal(self.price_unit)
            * to_decimal(self.quantity)
            * (Decimal(100) - to_decimal(self.discount))
            / Decimal(100)
        )


def remaining_fraction(period, day):
    """Share of ``period`` left on ``day`` (``day`` inside the period, end excluded)."""
    if not period.start <= day < period.end:
        raise ValueError("the change day must fall inside the period")
    return Decimal((period.end - day).days) / Decimal(period.days)


def prorate(terms, period, day, decimals):
    """Amount of ``terms`` for what is left of ``period`` from ``day``, rounded."""
    remaining_fraction(period, day)  # checks that ``day`` falls inside the period
    return _days_share(terms, (period.end - day).days, period.days, decimals)


def _days_share(terms, days, period_days, decimals):
    """``subtotal × days / period_days``, rounded once. Multiplied before it is divided:
    a fraction divided first (1/30 = 0.0333…) loses exact halves (25.875 / 30 = 0.8625
    exactly, which rounds to 0.863, not 0.862)."""
    return round_money(terms.subtotal * Decimal(days) / Decimal(period_days), decimals)


def prorate_span(terms, period, start, end, decimals):
    """Amount of ``terms`` for the days ``[start, end)`` of ``period``, rounded.

    In-arrears lines are billed in segments: a change on day ``D`` bills the old terms
    for ``[period.start, D)`` and the new ones for ``[D, period.end)``."""
    if not period.start <= start <= end <= period.end:
        raise ValueError("the span must fall inside the period")
    return _days_share(terms, (end - start).days, period.days, decimals)


def full_amount(terms, decimals):
    """Amount of ``terms`` for one whole period, rounded."""
    return round_money(terms.subtotal, decimals)


def switch_amounts(old, new, period, day, decimals):
    """``{key: (credit, charge)}`` for a switch of billing period on ``day``: the unused
    part of the old period is credited, and a whole new period (starting on ``day``) is
    charged at the new terms."""
    result = {}
    for key in sorted(set(old) | set(new), key=repr):
        credit = -prorate(old[key], period, day, decimals) if key in old else Decimal(0)
        charge = full_amount(new[key], decimals) if key in new else Decimal(0)
        result[key] = (round_money(credit, decimals), charge)
    return result


def change_amounts(old, new, period, day, decimals):
    """``{key: (credit, charge)}`` for lines ``old`` → ``new`` (dicts of :class:`Terms`;
    a key missing on one side is a line added or removed)."""
    result = {}
    for key in sorted(set(old) | set(new), key=repr):
        credit = -prorate(old[key], period, day, decimals) if key in old else Decimal(0)
        charge = prorate(new[key], period, day, decimals) if key in new else Decimal(0)
        result[key] = (round_money(credit, decimals), charge)
    return result
