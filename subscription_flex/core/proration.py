"""Day-based proration of mid-period changes (groundwork for change requests).

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
    return round_money(terms.subtotal * remaining_fraction(period, day), decimals)


def change_amounts(old, new, period, day, decimals):
    """``{key: (credit, charge)}`` for lines ``old`` → ``new`` (dicts of :class:`Terms`;
    a key missing on one side is a line added or removed)."""
    result = {}
    for key in sorted(set(old) | set(new), key=repr):
        credit = -prorate(old[key], period, day, decimals) if key in old else Decimal(0)
        charge = prorate(new[key], period, day, decimals) if key in new else Decimal(0)
        result[key] = (round_money(credit, decimals), charge)
    return result
