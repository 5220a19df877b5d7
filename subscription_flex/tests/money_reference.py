"""An independent reference of the money rules of the README, for the randomized ORM test
(``test_money_scenarios.py``).

Written from the README only: nothing here imports ``subscription_flex.core`` or the
models' money code. Periods are recomputed with ``dateutil`` from the anchor and an index,
amounts with :class:`fractions.Fraction` (exact) and rounded once per line, half away from
zero, to the currency's decimals.

A :class:`RefSubscription` follows one subscription through the same events the test
drives through the ORM, and lists the documents (invoices, credit notes) each event should
make, line by line: ``(product, first day, last day, signed amount)``.

Where the README is silent, the assumption is written where it is made (``ASSUMPTION``).
"""

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

from dateutil.relativedelta import relativedelta

ONE_DAY = timedelta(days=1)
TAX_RATE = Fraction(21, 100)
# Months in one unit, only to tell a longer billing period from a shorter one.
MONTHS_PER_UNIT = {
    "day": Fraction(1200, 36525),
    "week": Fraction(120000, 521775),
    "month": Fraction(1),
    "year": Fraction(12),
}
APPROX_DAYS = {"day": 1, "week": 7, "month": 31, "year": 366}  # upper bounds


def money(amount, decimals):
    """``amount`` rounded once to ``decimals``, half away from zero, as a Decimal."""
    scaled = Fraction(amount) * 10**decimals
    units = (2 * abs(scaled.numerator) + scaled.denominator) // (2 * scaled.denominator)
    return Decimal(-units if scaled < 0 else units).scaleb(-decimals)


def shift(day, unit, count):
    return (
        day
        + {
            "day": relativedelta(days=count),
            "week": relativedelta(weeks=count),
            "month": relativedelta(months=count),
            "year": relativedelta(years=count),
        }[unit]
    )


@dataclass
class RefPlan:
    name: str
    interval: int
    unit: str
    timing: str  # advance | arrears
    mode: str  # invoice | next_invoice | none
    downgrade: str  # immediate | period_end
    shorter: str  # period_end | immediate
    notice_days: int = 0
    term_months: int = 0  # fixed term that ends (0: evergreen)

    @property
    def months(self):
        return self.interval * MONTHS_PER_UNIT[self.unit]

    def period(self, anchor, index):
        return (
            shift(anchor, self.unit, self.interval * index),
            shift(anchor, self.unit, self.interval * (index + 1)),
        )

    def containing(self, anchor, day):
        """``(index, start, end)`` of the schedule period holding ``day`` (>= anchor)."""
        index = max((day - anchor).days // (APPROX_DAYS[self.unit] * self.interval) - 1, 0)
        while True:
            start, end = self.period(anchor, index)
            if day < start:
                index -= 1
            elif day >= end:
                index += 1
            else:
                return index, start, end


@dataclass
class RefLine:
    product: str
    quantity: Fraction
    discount: Fraction
    custom: Fraction | None = None  # a custom price (kept over price versions)
    terms_start: date | None = None


@dataclass
class RefDoc:
    kind: str  # invoice | refund
    day: date
    lines: list  # (product, first day, last day, signed amount)
    origin: str = ""

    @property
    def untaxed(self):
        return sum((line[3] for line in self.lines), Decimal(0))

    def total(self, decimals):
        return self.untaxed + sum(
            (money(Fraction(line[3]) * TAX_RATE, decimals) for line in self.lines), Decimal(0)
        )

    def key(self):
        return (self.day, self.kind, sorted(self.lines))


@dataclass
class RefChange:
    """What the test asks: ``lines`` is ``[(product, quantity, discount, custom)]``
    (quantity 0 removes, a product not on the subscription is added)."""

    change_type: str  # lines | plan | cancel_now
    new_plan: str | None = None
    lines: list = field(default_factory=list)
    timing: str = "now"  # now | date
    day: date | None = None
    mode: str | None = None  # override of the plan's proration mode


class Refused(Exception):
    """The README says this change is refused (e.g. it would take effect after the end)."""


class RefSubscription:
    def __init__(self, decimals, plans, versions, plan, start, lines):
        self.decimals = decimals
        self.plans = plans  # name -> RefPlan
        self.versions = versions  # (plan, product) -> [(date, Fraction)] sorted by date
        self.plan = plans[plan]
        self.lines = OrderedDict((line.product, line) for line in lines)
        self.anchor = start
        self.next_start = start
        self.end = shift(start, "month", self.plan.term_months) if self.plan.term_months else None
        self.state = "active"
        self.pending = []  # items waiting for the next invoice
        self.scheduled = None  # (RefChange, day)
        self.pause_day = None
        self.loose = False  # see pause() in arrears
        self.notes = []

    # ----------------------------------------------------------------- prices

    def version(self, plan_name, product, day):
        price = None
        for start, value in self.versions[(plan_name, product)]:
            if start <= day:
                price = value
        assert price is not None, (plan_name, product, day)
        return price

    def price(self, line, plan, day):
        return (
            line.custom if line.custom is not None else self.version(plan.name, line.product, day)
        )

    @staticmethod
    def subtotal(price, quantity, discount):
        """Unrounded ``price × quantity × (1 − discount %)``."""
        return Fraction(price) * Fraction(quantity) * (100 - Fraction(discount)) / 100

    def line_subtotal(self, line, plan, day):
        return self.subtotal(self.price(line, plan, day), line.quantity, line.discount)

    # ---------------------------------------------------------------- periods

    def schedule_period(self, day, cut=True):
        """``(start, end, full_end)`` of the period holding ``day``; ``end`` is cut at
        the end date. ``None`` before the anchor."""
        if day < self.anchor:
            return None
        _index, start, full_end = self.plan.containing(self.anchor, day)
        end = full_end
        if cut and self.end and start < self.end < full_end:
            end = self.end
        return start, end, full_end

    def period_end_after(self, day):
        period = self.schedule_period(day, cut=False)
        return period[1] if period else self.anchor

    def is_unbilled_boundary(self, day):
        period = self.schedule_period(day, cut=False)
        if period is None:
            return True
        if period[0] != day:
            return False
        if self.plan.timing == "arrears":
            return True
        return self.next_start <= day

    def due_periods(self, today):
        """Periods due on ``today``: ``[(start, end, full_end)]``."""
        if self.state not in ("active", "to_close") or self.next_start is None:
            return []
        result = []
        index, start, full_end = self.plan.containing(self.anchor, self.next_start)
        assert start == self.next_start, "the reference never bills stubs"
        while True:
            if self.end and start >= self.end:
                break
            end = min(full_end, self.end) if self.end else full_end
            due_on = start if self.plan.timing == "advance" else end
            if due_on > today:
                break
            result.append((start, end, full_end))
            index += 1
            start, full_end = self.plan.period(self.anchor, index)
        return result

    def next_due_day(self):
        """Next day something happens without a user: an invoice due, a scheduled
        change, the end of the service."""
        days = []
        if self.state in ("active", "to_close"):
            if not self.end or self.next_start < self.end:
                _index, start, full_end = self.plan.containing(self.anchor, self.next_start)
                end = min(full_end, self.end) if self.end else full_end
                days.append(start if self.plan.timing == "advance" else end)
            elif self.end:
                days.append(self.end)
            if self.end:
                days.append(self.end)
        if self.scheduled and self.state in ("active", "to_close"):
            days.append(self.scheduled[1])
        return min(days) if days else None

    # -------------------------------------------------------------- invoicing

    def invoice(self, today):
        """Documents of the recurring invoicing on ``today`` (cron or Invoice Now)."""
        docs = []
        for start, end, full_end in self.due_periods(today):
            full_days = (full_end - start).days
            lines = []
            for line in self.lines.values():
                sub = self.line_subtotal(line, self.plan, start)
                first = start
                if (
                    self.plan.timing == "arrears"
                    and line.terms_start
                    and start < line.terms_start < end
                ):
                    # README: in arrears the new terms are billed for [D, end) on the
                    # period's invoice.
                    first = line.terms_start
                if first == start and end == full_end:
                    amount = money(sub, self.decimals)
                else:
                    # Issue 28 §2: a period cut at the end date is cut in amount too, by
                    # the day rule of a change (days of the period over its full days).
                    amount = money(sub * (end - first).days / full_days, self.decimals)
                lines.append((line.product, first, end - ONE_DAY, amount))
            if self.pending:
                lines += [item[:4] for item in self.pending]
                self.pending = []
            day = start if self.plan.timing == "advance" else end
            docs.append(RefDoc("invoice", day, lines, "recurring"))
            self.next_start = end
        self._update_lifecycle(today)
        return docs

    def _update_lifecycle(self, today):
        if (
            self.state in ("active", "to_close")
            and self.end
            and self.end <= today
            and self.next_start >= self.end
        ):
            self.state = "closed"

    # ---------------------------------------------------------------- changes

    def target_lines(self, change, plan, price_day):
        """``OrderedDict(product -> RefLine)`` after the change, priced on ``price_day``:
        lines without a custom price take ``plan``'s version valid that day."""
        if change.change_type == "cancel_now":
            return OrderedDict()
        target = OrderedDict()
        for product, line in self.lines.items():
            target[product] = RefLine(product, line.quantity, line.discount, line.custom)
        for product, quantity, discount, custom in change.lines:
            if product not in target:
                target[product] = RefLine(product, quantity, discount)
            new = target[product]
            new.quantity, new.discount = Fraction(quantity), Fraction(discount)
            if custom is not None:
                new.custom = Fraction(custom)
            if not quantity:
                del target[product]
        if not target:
            raise Refused("no line left")
        return target

    def _terms(self, line, plan, day):
        return (self.price(line, plan, day), line.quantity, line.discount)

    def _full_total(self, lines, plan, day):
        return sum(
            (money(self.line_subtotal(line, plan, day), self.decimals) for line in lines.values()),
            Decimal(0),
        )

    def switch_of(self, change):
        if change.change_type != "plan":
            return None
        old, new = self.plan, self.plans[change.new_plan]
        if (old.interval, old.unit) == (new.interval, new.unit):
            return None
        return "longer" if new.months > old.months else "shorter"

    def effective_day(self, change, today, on_its_day=False):
        """Day the change takes effect, asked on ``today`` (README: *Mid-period
        changes*); raises :class:`Refused`."""
        if self.state not in ("active", "to_close"):
            raise Refused("not running")
        day = change.day if change.timing == "date" else today
        if change.change_type == "cancel_now":
            return day
        mode = change.mode or self.plan.mode
        switch = self.switch_of(change)
        new_plan = self.plans[change.new_plan] if change.new_plan else self.plan
        unbilled = self.is_unbilled_boundary(day)
        period = self.schedule_period(day, cut=False)
        price_day = period[0] if period else self.anchor
        target = self.target_lines(change, new_plan, price_day)
        decrease = not switch and self._full_total(target, new_plan, price_day) < self._full_total(
            self.lines, self.plan, price_day
        )
        deferred = not unbilled and (
            mode == "none"
            or (switch == "shorter" and self.plan.shorter == "period_end")
            or (decrease and self.plan.downgrade == "period_end")
        )
        if deferred and not on_its_day:
            day = self.period_end_after(day)
        if self.end and day >= self.end:
            raise Refused("after the end date")
        return day

    def compute_items(self, change, day, target, switch):
        """Proration items ``(product, first, last, amount, kind)`` of a change on
        ``day`` (README: proration rule, in advance / in arrears, period switches)."""
        if self.is_unbilled_boundary(day):
            return []
        start, end, full_end = self.schedule_period(day)
        # ASSUMPTION (README silent): in a period cut at the end date, the day fraction
        # keeps the full period's days as denominator, so a credit is the unused part of
        # what the cut invoice billed (issue 28 §2 bills a cut period days/full days).
        full_days = (full_end - start).days
        new_plan = self.plans[change.new_plan] if change.new_plan else self.plan
        price_day = day if switch else start
        old = {p: self._terms(line, self.plan, start) for p, line in self.lines.items()}
        new = {p: self._terms(line, new_plan, price_day) for p, line in target.items()}
        items = []

        def add(product, first, stop, amount, kind):
            if amount:
                items.append((product, first, stop - ONE_DAY, amount, kind))

        if self.plan.timing == "arrears":
            for product, terms in old.items():
                if product in new and new[product] == terms and not switch:
                    continue
                line = self.lines[product]
                first = max(start, line.terms_start or start)
                amount = money(
                    self.subtotal(*terms) * (day - first).days / full_days, self.decimals
                )
                add(product, first, day, amount, "charge")
            return items
        if switch:
            new_end = shift(day, new_plan.unit, new_plan.interval)
            for product, terms in old.items():
                credit = money(self.subtotal(*terms) * (end - day).days / full_days, self.decimals)
                add(product, day, end, -credit, "credit")
            for product, terms in new.items():
                add(product, day, new_end, money(self.subtotal(*terms), self.decimals), "charge")
            return items
        for product in list(old) + [p for p in new if p not in old]:
            if product in old and product in new and old[product] == new[product]:
                continue
            if product in old:
                credit = money(
                    self.subtotal(*old[product]) * (end - day).days / full_days, self.decimals
                )
                add(product, day, end, -credit, "credit")
            if product in new:
                charge = money(
                    self.subtotal(*new[product]) * (end - day).days / full_days, self.decimals
                )
                add(product, day, end, charge, "charge")
        return items

    def apply(self, change, day, origin="change"):
        """Apply ``change`` on ``day`` (today); returns ``(docs, preview)`` where the
        preview is ``{"items", "document", "untaxed"}``."""
        # What was due before the change is invoiced first, with the terms in force then
        # (in arrears, the period that ends on ``day`` too).
        catch_up = self.invoice(day if self.plan.timing == "arrears" else day - ONE_DAY)
        switch = self.switch_of(change)
        new_plan = self.plans[change.new_plan] if change.new_plan else self.plan
        unbilled = self.is_unbilled_boundary(day)
        if unbilled or switch:
            price_day = day
        else:
            period = self.schedule_period(day, cut=False)
            price_day = period[0] if period else self.anchor
        target = self.target_lines(change, new_plan, price_day)
        mode = "invoice" if change.change_type == "cancel_now" else (change.mode or self.plan.mode)
        items = self.compute_items(change, day, target, switch)
        if switch and items:
            mode = "invoice"
        if mode == "next_invoice" and items:
            net = sum((item[3] for item in items), Decimal(0))
            if net < 0 and -net > self._full_total(target, new_plan, price_day):
                mode = "invoice"
        docs = catch_up
        untaxed = sum((item[3] for item in items), Decimal(0))
        if not items:
            document = "none"
        elif mode == "next_invoice":
            document = "next_invoice"
        else:
            document = "invoice" if untaxed > 0 else ("refund" if untaxed < 0 else "none")
        if mode == "invoice":
            to_bill = items + self.pending
            self.pending = []
            net = sum((item[3] for item in to_bill), Decimal(0))
            if net:
                kind = "invoice" if net > 0 else "refund"
                docs.append(RefDoc(kind, day, [item[:4] for item in to_bill], origin))
        elif items:
            self.pending += items
        # New terms: changed and added lines take effect on ``day``.
        for product, new in target.items():
            old = self.lines.get(product)
            if (
                old is None
                or self._terms(old, self.plan, price_day) != self._terms(new, new_plan, price_day)
                or old.custom != new.custom
            ):
                new.terms_start = day
            else:
                new.terms_start = old.terms_start
        if change.change_type == "cancel_now":
            self.state = "closed"
            self.end = day
        else:
            self.lines = target
        if change.change_type == "plan":
            if switch and day >= self.anchor:
                charged_now = not unbilled and self.plan.timing == "advance"
                self.anchor = day
                self.next_start = (
                    shift(day, new_plan.unit, new_plan.interval) if charged_now else day
                )
            self.plan = new_plan
        preview = {"items": items, "document": document, "untaxed": untaxed}
        return docs, preview

    def confirm(self, change, today):
        """Confirm on ``today``: applied now or scheduled. Returns ``(docs, preview)``,
        the preview with the effective day."""
        day = self.effective_day(change, today)
        if day > today:
            self.scheduled = (change, day)
            return [], {"effective_date": day, "scheduled": True}
        docs, preview = self.apply(change, day)
        preview.update(effective_date=day, scheduled=False)
        return docs, preview

    def run_scheduled(self, today):
        """The cron *apply scheduled changes* on ``today`` (before invoicing)."""
        if not self.scheduled or self.scheduled[1] > today:
            return []
        change, day = self.scheduled
        self.scheduled = None
        try:
            self.effective_day(change, day, on_its_day=True)
        except Refused:
            return []
        docs, _preview = self.apply(change, day, origin="scheduled change")
        return docs

    # -------------------------------------------------------------- lifecycle

    def cancel_at_end(self, today):
        """*Cancel at period end*: ends at the latest of today + notice and today,
        rounded up to the end of the billing period."""
        end = today + timedelta(days=self.plan.notice_days)
        if end > self.anchor:
            period = self.schedule_period(end, cut=False)
            if period[0] != end:
                end = period[1]
        if self.plan.timing == "advance":
            # ASSUMPTION (README: "rounded up to the end of the billing period ...
            # because that period was paid for"): in advance the service never ends
            # before the end of the period already invoiced.
            end = max(end, self.next_start)
        self.state = "to_close"
        self.end = end
        self._update_lifecycle(today)
        return []

    def close_now(self, today):
        """*Close Now*. ASSUMPTION (issue 28 §3, the README is silent today): by default,
        in advance a credit note for the unused part, in arrears an invoice for the days
        used, as *Cancel now*."""
        docs, _preview = self.apply(RefChange("cancel_now"), today, origin="close now")
        return docs

    def pause(self, today):
        self.state = "paused"
        self.pause_day = today
        if self.plan.timing == "arrears":
            # Issue 28 §1 lets the fix choose when the days used before the pause are
            # billed (at the pause or on the period's due day): from here on the test
            # compares what is billed per product over the scenario, not per document.
            self.loose = True
            if self.next_start < today:
                # Days used before the pause: the current terms up to the pause day.
                start, end, full_end = self.schedule_period(self.next_start)
                full_days = (full_end - start).days
                lines = []
                for line in self.lines.values():
                    first = max(start, line.terms_start or start)
                    sub = self.line_subtotal(line, self.plan, start)
                    amount = money(sub * (today - first).days / full_days, self.decimals)
                    lines.append((line.product, first, today - ONE_DAY, amount))
                self._paused_period = (start, end, full_end)
                return [RefDoc("invoice", today, lines + self._take_pending(), "pause")]
        return []

    def _take_pending(self):
        pending, self.pending = [item[:4] for item in self.pending], []
        return pending

    def resume(self, today):
        self.state = "active"
        paused_period = getattr(self, "_paused_period", None)
        self._paused_period = None
        if self.plan.timing == "arrears" and paused_period:
            start, end, full_end = paused_period
            if today < end:
                # Resumed inside the period: the old schedule goes on; the period's
                # invoice bills the days from the resume (never a day of the pause).
                for line in self.lines.values():
                    line.terms_start = today
                return []
            self.anchor = self.next_start = today
            return []
        if self.next_start < today:
            # README: the pause outlasted the period paid for: a new anchor.
            self.anchor = self.next_start = today
        return []
