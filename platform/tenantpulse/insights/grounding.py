"""The grounding check: a written sentence may quote only numbers and dates of its tenant's facts.

A number in a sentence matches a fact when the fact, rounded to as many decimals as the sentence
wrote, equals it (the sign aside: "fell 12%" quotes a growth of -0.12). A number followed by "%"
is a rate: it must be a fact times 100 (every rate among the facts is a fraction). An ISO date must
be one of the
facts' dates. Anything else, such as "24/7" or a year, fails: the check is strict by design.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tenantpulse.insights.facts import TenantFacts

_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
# Not part of a word or identifier ("GA4", "p90", "user_2"): those are names, not quoted numbers.
_NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(\s?%)?(?![\w])")


@dataclass(frozen=True)
class Verdict:
    grounded: bool
    unmatched: tuple[str, ...]  # the numbers or dates that no fact supports


def quoted_numbers(sentence: str) -> list[tuple[float, int, bool]]:
    """(value, decimals written, is a percentage) for each number in the sentence, dates aside."""
    found = []
    for match in _NUMBER.finditer(_DATE.sub(" ", sentence)):
        whole, fraction, percent = match.groups()
        text = whole.replace(",", "") + (fraction or "")
        found.append((float(text), len(fraction) - 1 if fraction else 0, bool(percent)))
    return found


def check_sentence(sentence: str, facts: TenantFacts) -> Verdict:
    unmatched = [day for day in _DATE.findall(sentence) if day not in facts.dates.values()]
    values = [abs(v) for v in facts.numbers.values()]
    for value, decimals, percent in quoted_numbers(sentence):
        candidates = [v * 100 for v in values] if percent else values
        if not any(_rounds_to(candidate, value, decimals) for candidate in candidates):
            unmatched.append(f"{value:.{decimals}f}{'%' if percent else ''}")
    return Verdict(not unmatched, tuple(unmatched))


def _rounds_to(fact: float, quoted: float, decimals: int) -> bool:
    # Half a unit of the last written decimal either way, so both rounding conventions pass.
    return abs(fact - quoted) <= 0.5 * 10**-decimals + 1e-9
