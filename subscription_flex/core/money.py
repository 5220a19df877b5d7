"""The one rounding rule for money, written down once.

Every amount is computed with :class:`decimal.Decimal` from the line's inputs and
rounded once, per line, half away from zero ("ROUND_HALF_UP" in ``decimal``'s
terms; Odoo's ``float_round`` default), to the currency's number of decimals.
Totals are sums of already-rounded line amounts, as on any Odoo invoice.
"""

from decimal import ROUND_HALF_UP, Decimal


def to_decimal(value):
    if isinstance(value, Decimal):
        return value
    # repr() of a float is the shortest string that round-trips: 0.1 -> "0.1".
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def round_money(amount, decimals):
    quantum = Decimal(1).scaleb(-decimals)
    return to_decimal(amount).quantize(quantum, rounding=ROUND_HALF_UP)


def line_subtotal(price_unit, quantity, discount, decimals):
    """Untaxed amount of one line: ``price × qty × (1 − discount%)``, rounded once."""
    gross = to_decimal(price_unit) * to_decimal(quantity)
    return round_money(gross * (Decimal(100) - to_decimal(discount)) / Decimal(100), decimals)
