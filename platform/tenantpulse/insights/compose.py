"""Writers and the grounding gate between them and the user.

A writer gets a `WritingRequest` (the tenant's facts, the topics to write with their deterministic
drafts, and quoted tenant context) and answers with one sentence per topic it wrote. Two writers
share that interface: `DeterministicWriter` (the drafts as they are) and `llm.LlmWriter`. Whatever
the writer, `compose` checks every sentence against the facts; a sentence that fails is dropped,
counted and replaced by its topic's draft, and a topic the writer left out keeps its draft. Which
topics exist, the recommendations' priorities and actions all come from the analysis, never from a
writer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from tenantpulse.insights.deterministic import (
    IMPROVEMENT,
    RECOMMENDATION,
    STRENGTH,
    Sentence,
    draft_sentences,
)
from tenantpulse.insights.facts import TenantFacts
from tenantpulse.insights.grounding import check_rewrite, check_sentence

DETERMINISTIC = "deterministic"


@dataclass(frozen=True)
class TenantContext:
    """Free text about the tenant that its users wrote: data for a prompt, never instructions."""

    name: str = ""
    recent_pr_titles: tuple[str, ...] = ()


@dataclass(frozen=True)
class WritingRequest:
    facts: TenantFacts
    drafts: list[Sentence]
    context: TenantContext = field(default_factory=TenantContext)


@dataclass(frozen=True)
class Written:
    """A writer's answer: sentence text by topic, and what producing it cost."""

    texts: dict[str, str]
    generated_by: str
    error: str | None = None  # why the writer gave nothing (the drafts are used)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    from_cache: bool = False
    input_hash: str | None = None


class Writer(Protocol):
    name: str

    def write(self, request: WritingRequest) -> Written: ...


class DeterministicWriter:
    name = DETERMINISTIC

    def write(self, request: WritingRequest) -> Written:
        return Written({s.topic: s.text for s in request.drafts}, DETERMINISTIC)


@dataclass(frozen=True)
class DroppedSentence:
    topic: str
    text: str
    unmatched: tuple[str, ...]


@dataclass(frozen=True)
class TenantInsights:
    tenant_id: str
    as_of: dt.date
    strengths: list[str]
    improvements: list[str]
    recommendation_impacts: dict[str, str]  # rule -> written impact
    written: Written
    sentences_checked: int
    dropped: list[DroppedSentence]
    fallback_topics: list[str]  # topics that kept the deterministic draft

    @property
    def generated_by(self) -> str:
        """The model's name when at least one of its sentences is shown, else deterministic."""
        drafts_only = self.written.error is not None or not (
            set(self.written.texts) - set(self.fallback_topics)
        )
        return DETERMINISTIC if drafts_only else self.written.generated_by


def request_for(facts: TenantFacts, context: TenantContext | None = None) -> WritingRequest:
    return WritingRequest(facts, draft_sentences(facts), context or TenantContext())


def compose(request: WritingRequest, written: Written) -> TenantInsights:
    """Ground every written sentence; fall back to the draft of any topic that fails or is missing."""
    facts = request.facts
    texts: dict[str, list[str]] = {STRENGTH: [], IMPROVEMENT: []}
    impacts: dict[str, str] = {}
    dropped, fallbacks, checked = [], [], 0
    for draft in request.drafts:
        text = written.texts.get(draft.topic)
        if text is not None and text != draft.text:
            checked += 1
            verdict = check_rewrite(text, draft.text, facts)
            if not verdict.grounded:
                dropped.append(DroppedSentence(draft.topic, text, verdict.unmatched))
                text = None
        if text is None and written.generated_by != DETERMINISTIC:
            fallbacks.append(draft.topic)
        if text is None or text == draft.text:
            checked += 1
            verdict = check_sentence(draft.text, facts)
            if not verdict.grounded:  # a template quoting a number it should not: never shown
                dropped.append(DroppedSentence(draft.topic, draft.text, verdict.unmatched))
                continue
            text = draft.text
        if draft.kind == RECOMMENDATION:
            impacts[draft.topic.removeprefix("recommendation:")] = text
        else:
            texts[draft.kind].append(text)
    return TenantInsights(
        facts.tenant_id,
        facts.as_of,
        texts[STRENGTH],
        texts[IMPROVEMENT],
        impacts,
        written,
        checked,
        dropped,
        fallbacks,
    )


def write_insights(
    requests: list[WritingRequest],
    writer: Writer,
    concurrency: int = 1,
    progress: Callable[[TenantInsights], None] | None = None,
) -> list[TenantInsights]:
    """Write and ground every request, at most `concurrency` writer calls at a time; results in
    the order of `requests`."""

    def one(request: WritingRequest) -> TenantInsights:
        insights = compose(request, writer.write(request))
        if progress is not None:
            progress(insights)
        return insights

    if concurrency <= 1 or len(requests) <= 1:
        return [one(r) for r in requests]
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, requests))
