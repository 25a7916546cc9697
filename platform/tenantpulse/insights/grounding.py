"""The grounding check: what a written sentence may say.

`check_sentence` (every sentence shown, drafts included): a number in a sentence matches a fact
when the fact, rounded to as many decimals as the sentence wrote, equals it (the sign aside: "fell
12%" quotes a growth of -0.12). A number followed by "%" (or "percent") is a rate: it must be a
fact times 100 (every rate among the facts is a fraction). An ISO date must be one of the facts'
dates. Anything else, such as "24/7" or a year, fails: the check is strict by design.

`check_rewrite` (a writer's sentence for a topic, against that topic's draft): the sentence must
say what its draft says, in plain text. It passes only when, in this order:

1. it is plain text: only letters, digits, spaces and plain punctuation (SAFE_CHARACTERS, or a
   character of the draft), and nothing that reads as a link (`scheme:`, `www.`, `name.tld`);
2. it passes `check_sentence`;
3. every number in it is one of the draft's numbers with the same unit (%, days, hours, none),
   written as the draft rounds it or more precisely; every number of the draft is in it, those of
   one unit in the draft's order; its ISO dates are the draft's;
4. every word in it is a word of the draft or of VOCABULARY (plain words that name no number,
   date, place, company, priority, negation or advice: "ten", "Nov", "ignore", "priority",
   "discount" are not in it);
5. it names the same metrics as the draft (METRIC_WORDS), and has the same direction and level
   words (MEANING_WORDS: up / down, low / medium / high, good / bad), by class, so "rose" may
   stand for "up" but never for "down";
6. it names the draft's weekdays, in the draft's order, each with the same direction or level
   words around it ("lowest on Tue, peaks on Sun" is not "peaks on Tue, lowest on Sun").

The first rule that fails gives the verdict's `unmatched`: the numbers or dates that no fact
supports (rule 2), or what else did not match. Strict on purpose: a sentence that fails is replaced
by its draft, so a false rejection costs only the model's wording.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from tenantpulse.insights.facts import TenantFacts

_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
# A number not part of a word or identifier ("GA4", "p90", "user_2": names, not quoted numbers),
# with what follows it: "%" or a unit word, or letters glued to it ("10x", "3rd", "5M", "12h").
_NUMBER = re.compile(
    r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?"
    r"(?:(\s?%)|([^\W\d_]+)|\s+(percent|per\s+cent|pct|days?|hours?|hrs?|h)\b)?"
    r"(?![\w])"
)
UNITS = {
    "%": "%",
    "percent": "%",
    "per cent": "%",
    "pct": "%",
    "day": "days",
    "days": "days",
    "hour": "hours",
    "hours": "hours",
    "hr": "hours",
    "hrs": "hours",
    "h": "hours",
}
_WORD = re.compile(r"[^\W\d_][^\W_]*(?:['’][^\W\d_]+)?")
_LINK = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]*:(?=[^\s\d])|\bwww\.|\b[A-Za-z0-9-]+\.[A-Za-z]{2,}\b", re.IGNORECASE
)
SAFE_CHARACTERS = frozenset(string.ascii_letters + string.digits + " .,:;()'\"%-!?’‘“”–—")

# Words a reworded sentence may use besides its draft's: plain glue and measure words. Not here on
# purpose: numbers in words, months, names, modal and hedging words, negations, priorities, advice.
VOCABULARY = frozenset(
    """
    a an the this that these those it its their they there here
    is are was were be been being has have had stands stood
    of on in at to for from by with over during across since before after than as and per
    each every all both now currently so far about around roughly nearly almost
    day days daily hour hours h week weeks weekly month months monthly period periods window windows
    previous prior preceding earlier last past recent recently latest same
    average averaged averages mean median rate rates share percent cent percentage proportion
    probability chance level levels total amount value values expected figure figures number
    compared comparison against versus vs relative baseline
    customer customers account tenant team users work ship ships shipped wait waits waited waiting
    take takes took taking time follows follow following rhythm pattern peaks peak peaking peaked
    spike spikes dip dips failed fail fails failing failure failures new check risk
    request requests worth knowing note overall
    mon monday mondays tue tues tuesday tuesdays wed wednesday wednesdays thu thur thurs thursday
    thursdays fri friday fridays sat saturday saturdays sun sunday sundays
    """.split()
)
# Words naming a metric; a sentence names the same metrics as its draft.
METRIC_WORDS = {
    "revenue": "revenue revenues sales income earnings turnover",
    "mrr": "mrr recurring",  # "recurring revenue" is MRR, not revenue: see _classes_in
    "web": "website web site traffic sessions session visits visitors",
    "bounce": "bounce bounced bounces bouncing",
    "merges": "pull prs pr merge merges merged merging reviews review reviewed engineering",
    "payments": "payment payments charge charges charged billing dunning card cards",
    "churn": "churn churning churned retention leave leaving",
    "health": "health score scores",
    "data": "data connection connections sync syncs synced freshness fresh",
}
# Words that carry a direction or a level; a sentence has the same classes as its draft.
MEANING_WORDS = {
    "up": "up rise rises rising rose risen grow grows growing grew grown growth increase "
    "increased increases increasing higher gain gained gains climbed climbing jumped more",
    "down": "down fall falls falling fell fallen drop drops dropped dropping decline declined "
    "declines declining decrease decreased decreasing lower shrank shrunk shrinking less fewer",
    "low": "low lowest minimal slight",
    "medium": "medium moderate",
    "high": "high highest elevated severe significant peak peaks peaking peaked",
    "good": "healthy good strong solid reliable reliably steady steadily stable quick quickly "
    "fast faster sooner",
    "bad": "weak poor unhealthy slow slowly long longer",
}
WEEKDAYS = {
    word: day[:3]
    for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    for word in (day, day + "s", day[:3])
} | {"tues": "tue", "thur": "thu", "thurs": "thu"}


def _classes(table: dict[str, str]) -> dict[str, str]:
    return {word: name for name, words in table.items() for word in words.split()}


_METRIC_OF = _classes(METRIC_WORDS)
_MEANING_OF = _classes(MEANING_WORDS)
_ALLOWED = VOCABULARY | set(_METRIC_OF) | set(_MEANING_OF)


@dataclass(frozen=True)
class Verdict:
    grounded: bool
    unmatched: tuple[str, ...]  # the numbers, dates or words that no fact or draft supports


@dataclass(frozen=True)
class Quantity:
    value: float
    decimals: int
    unit: str  # "%", "days", "hours", "" (a bare number), or letters glued to it ("x", "rd")

    def __str__(self) -> str:
        text = f"{self.value:.{self.decimals}f}"
        return f"{text} {self.unit}" if self.unit in ("days", "hours") else text + self.unit


def quantities(sentence: str) -> list[Quantity]:
    """Each number in the sentence with its decimals and unit, ISO dates aside."""
    found = []
    for match in _NUMBER.finditer(_DATE.sub(" ", sentence)):
        whole, fraction, percent, glued, word = match.groups()
        if percent:
            unit = "%"
        elif word:
            unit = UNITS[" ".join(word.lower().split())]
        else:
            unit = UNITS.get(glued.lower(), glued) if glued else ""
        value = float(whole.replace(",", "") + (fraction or ""))
        found.append(Quantity(value, len(fraction) - 1 if fraction else 0, unit))
    return found


def quoted_numbers(sentence: str) -> list[tuple[float, int, bool]]:
    """(value, decimals written, is a percentage) for each number in the sentence, dates aside."""
    return [(q.value, q.decimals, q.unit == "%") for q in quantities(sentence)]


def check_sentence(sentence: str, facts: TenantFacts) -> Verdict:
    unmatched = [day for day in _DATE.findall(sentence) if day not in facts.dates.values()]
    values = [abs(v) for v in facts.numbers.values()]
    for value, decimals, percent in quoted_numbers(sentence):
        candidates = [v * 100 for v in values] if percent else values
        if not any(_rounds_to(candidate, value, decimals) for candidate in candidates):
            unmatched.append(f"{value:.{decimals}f}{'%' if percent else ''}")
    return Verdict(not unmatched, tuple(unmatched))


def check_rewrite(sentence: str, draft: str, facts: TenantFacts) -> Verdict:
    """Whether `sentence` may stand for `draft` (see the module's rules); the first rule that
    fails gives the verdict."""
    for rule in (_plain_text, _grounded(facts), _same_numbers, _known_words, _same_meaning):
        problems = rule(sentence, draft)
        if problems:
            return Verdict(False, tuple(problems))
    return Verdict(True, ())


def _plain_text(sentence: str, draft: str) -> list[str]:
    allowed = SAFE_CHARACTERS | set(draft)
    odd = sorted({c for c in sentence if c not in allowed})
    return [f"character {c!r}" for c in odd] + [
        f"link {m.group()!r}" for m in _LINK.finditer(sentence)
    ]


def _grounded(facts: TenantFacts):
    return lambda sentence, _draft: list(check_sentence(sentence, facts).unmatched)


def _same_numbers(sentence: str, draft: str) -> list[str]:
    wanted, problems = quantities(draft), []
    used: set[int] = set()
    after: dict[str, int] = {}  # per unit, the draft index the last number matched
    for quantity in quantities(sentence):
        fits = [
            i
            for i, d in enumerate(wanted)
            if d.unit == quantity.unit
            and i >= after.get(d.unit, 0)
            and _rounds_to(quantity.value, d.value, d.decimals)
        ]
        match = next((i for i in fits if i not in used), fits[0] if fits else None)
        if match is None:
            problems.append(f"{quantity} is not a number of the draft (in its order)")
        else:
            used.add(match)
            after[quantity.unit] = match
    problems += [f"{d} of the draft left out" for i, d in enumerate(wanted) if i not in used]
    if sorted(set(_DATE.findall(sentence))) != sorted(set(_DATE.findall(draft))):
        problems.append(f"dates {_DATE.findall(sentence)} (draft: {_DATE.findall(draft)})")
    return problems


def _words(text: str) -> list[str]:
    return [w.lower().replace("’", "'") for w in _WORD.findall(text)]


def _known_words(sentence: str, draft: str) -> list[str]:
    allowed = _ALLOWED | set(_words(draft))
    return [f"word {w!r}" for w in dict.fromkeys(_words(sentence)) if w not in allowed]


def _same_meaning(sentence: str, draft: str) -> list[str]:
    problems = []
    for name, classes in (("metrics", _METRIC_OF), ("direction and level", _MEANING_OF)):
        said, meant = _classes_in(sentence, classes), _classes_in(draft, classes)
        if said != meant:
            problems.append(f"{name} {sorted(said)} (draft: {sorted(meant)})")
    said, meant = _weekdays(sentence), _weekdays(draft)
    if said != meant:
        problems.append(f"weekdays {said} (draft: {meant})")
    elif meant and _day_words(sentence) != _day_words(draft):  # "lowest on Tue, peaks on Sun"
        problems.append(f"weekdays said as {_day_words(sentence)} (draft: {_day_words(draft)})")
    return problems


def _classes_in(text: str, classes: dict[str, str]) -> set[str]:
    words = _words(text)
    return {
        classes[w]
        for i, w in enumerate(words)
        if w in classes and not (w == "revenue" and i and words[i - 1] == "recurring")
    }


def _weekdays(text: str) -> list[str]:
    return [WEEKDAYS[w] for w in _words(text) if w in WEEKDAYS]


def _day_words(text: str) -> list[str]:
    """The weekdays and direction or level classes in the order written: "peaks on Tue and is
    lowest on Sun" is high, tue, low, sun."""
    return [
        WEEKDAYS.get(w) or _MEANING_OF[w] for w in _words(text) if w in WEEKDAYS or w in _MEANING_OF
    ]


def _rounds_to(fact: float, quoted: float, decimals: int) -> bool:
    # Half a unit of the last written decimal either way, so both rounding conventions pass.
    return abs(fact - quoted) <= 0.5 * 10**-decimals + 1e-9
