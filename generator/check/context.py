"""What every check reads: the evidence, the observations, run identity and shared joins.

The joins several checks need (observed sends paired with truth expectations, expectations
indexed by trigger) are computed once, lazily, and cached here; each is a hash join on ids, so
the checker stays linear in events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import compress
from operator import attrgetter
from pathlib import Path

from generator.check.evidence import Evidence, TruthEvent
from generator.check.observed import Journey, Observed
from generator.events import Expectation, Outcome

_SEND = Outcome.SEND  # enum members cost ~90 ns a lookup on CPython 3.11: loops use this
_CAMPAIGN = attrgetter("campaign")
_TRIGGER_ID = attrgetter("trigger_event_id")
_OUTCOME_KEY = attrgetter("campaign", "outcome", "reason")


def _count_outcomes(expectations: Sequence[Expectation]) -> Counter[tuple[str, Outcome, str]]:
    # Several checks tally expectations by campaign and outcome: one C-level pass for all of
    # them (a Python loop per check over hundreds of thousands of expectations, before).
    return Counter(map(_OUTCOME_KEY, expectations))


class TriggerIndex:
    """Expectations by (campaign, trigger id), a later expectation of a key winning.

    A dict of trigger ids per campaign, built in C a campaign at a time: a million-event run has
    hundreds of thousands of expectations, and a (campaign, trigger id) tuple per expectation
    as the key would be that many more records for the collector to scan.
    """

    __slots__ = ("_by_campaign",)

    def __init__(self, expectations: Sequence[Expectation]) -> None:
        self._by_campaign: dict[str, dict[str, Expectation]] = {}
        for campaign in dict.fromkeys(map(_CAMPAIGN, expectations)):
            group = list(compress(expectations, map(campaign.__eq__, map(_CAMPAIGN, expectations))))
            self._by_campaign[campaign] = dict(zip(map(_TRIGGER_ID, group), group, strict=True))

    def get(self, campaign: str, trigger_id: str) -> Expectation | None:
        """The expectation of ``campaign`` triggered by ``trigger_id``, if any."""
        found = self._by_campaign.get(campaign)
        return found.get(trigger_id) if found is not None else None


@dataclass(frozen=True, slots=True)
class SendVerdict:
    """How one observed send compares with the truth."""

    send: Journey
    truth_id: str
    shopper: int | None
    category: str
    """``ok`` (paired with a truth SEND), ``violation`` (sent after the person's exit in truth),
    ``duplicate`` (another entry for an already-served trigger or beyond frequency), ``false``."""
    expectation: Expectation | None = None
    exit_event: TruthEvent | None = None


@dataclass(slots=True)
class Pairing:
    """Observed sends joined with truth expectations (see :func:`pair_sends`)."""

    verdicts: list[SendVerdict] = field(default_factory=list)
    missed: list[Expectation] = field(default_factory=list)
    paired: dict[int, Journey] = field(default_factory=dict)
    """``id(expectation)`` → the observed send that served it."""


DEFAULT_CLOCK_TOLERANCE_MS = 1000
"""How far apart an exit and a send may be and still be blamed on a coarse request clock."""


@dataclass
class CheckContext:
    """Inputs of one check run."""

    evidence: Evidence
    observed: Observed
    scenario_path: str
    seed: int
    ledger_path: Path | None = None
    extra_metrics: dict[str, float | None] = field(default_factory=dict)
    clock_tolerance_ms: int = DEFAULT_CLOCK_TOLERANCE_MS
    """How close an exit and a send may be and still be blamed on a coarse request clock
    ("batch_clock"). ``shopsim run``/``send`` on the virtual clock are exact (``X-Shopsim-Arrivals``
    gives every batch item its own arrival), so no disagreement there should ever need it; it is
    kept for load runs, whose scaled clock stamps a request with its actual send instant."""

    shoppers: int | None = None
    """The run's ``--shoppers`` override, if any: its replay needs it too (the scenario's own
    count or duration may end before a shopper of the bigger run arrives)."""

    def reproduce(self, shopper: int | None) -> str:
        """The command that replays one shopper of this run."""
        if shopper is None:
            return ""
        count = f" --shoppers {self.shoppers}" if self.shoppers is not None else ""
        command = f"shopsim replay {self.scenario_path} --seed {self.seed}{count} --shopper {shopper}"
        return f"reproduce with: {command}"

    def shopper_of(self, person: str) -> int | None:
        return self.evidence.person_shopper.get(person)

    @cached_property
    def truth_by_trigger(self) -> TriggerIndex:
        """(campaign, truth trigger id) → the truth expectation."""
        return TriggerIndex(self.evidence.truth)

    @cached_property
    def delivered_by_trigger(self) -> TriggerIndex:
        """(campaign, delivered trigger id) → the delivered-basis expectation."""
        return TriggerIndex(self.evidence.delivered)

    @cached_property
    def truth_outcomes(self) -> Counter[tuple[str, Outcome, str]]:
        """How many truth expectations there are per (campaign, outcome, reason), counted in C."""
        return _count_outcomes(self.evidence.truth)

    @cached_property
    def delivered_outcomes(self) -> Counter[tuple[str, Outcome, str]]:
        """How many delivered-basis expectations there are per (campaign, outcome, reason)."""
        return _count_outcomes(self.evidence.delivered)

    @cached_property
    def pairing(self) -> Pairing:
        return pair_sends(self)


def pair_sends(ctx: CheckContext) -> Pairing:
    """Join observed sends with truth SEND expectations and classify every send.

    Pass 1 pairs on (campaign, truth trigger id); pass 2 pairs what is left per (campaign,
    person) in time order (the platform may serve a person from a different trigger than the
    ideal one, e.g. when the first cart event arrived late). Independently, a send that
    happened after one of the person's truth exit events for that campaign (stamped at or after
    the trigger) is a suppression violation; with incomparable clocks (wall clock against a real
    workspace) a send whose truth expectation says "exited" counts instead.
    """
    ev = ctx.evidence
    campaigns = ev.scenario.campaigns
    truth_by_trigger = ctx.truth_by_trigger
    out = Pairing()
    sends = sorted(ctx.observed.sends, key=lambda s: (s.at_ms, s.campaign, s.person, s.trigger_event_id))
    paired_exp: set[int] = set()
    send_exp: dict[int, Expectation] = {}
    for i, send in enumerate(sends):
        exp = truth_by_trigger.get(send.campaign, ev.truth_id(send.trigger_event_id))
        if exp is not None and exp.outcome is _SEND and id(exp) not in paired_exp:
            paired_exp.add(id(exp))
            send_exp[i] = exp
    left_truth: dict[tuple[str, str], list[Expectation]] = {}
    for exp in ev.truth:
        if exp.outcome is _SEND and id(exp) not in paired_exp:
            left_truth.setdefault((exp.campaign, exp.person), []).append(exp)
    for group in left_truth.values():
        group.sort(key=lambda e: e.send_ms or 0)
    for i, send in enumerate(sends):
        if i in send_exp:
            continue
        waiting = left_truth.get((send.campaign, send.person))
        if waiting:
            exp = waiting.pop(0)
            paired_exp.add(id(exp))
            send_exp[i] = exp
    served: set[tuple[str, str]] = set()
    for i, send in enumerate(sends):
        truth_id = ev.truth_id(send.trigger_event_id)
        shopper = ctx.shopper_of(send.person)
        exp = send_exp.get(i)
        campaign = campaigns.get(send.campaign)
        exit_event: TruthEvent | None = None
        if campaign is not None and campaign.exit_on and shopper is not None:
            if ctx.observed.comparable_times:
                trigger_ms = ev.truth_ms.get(truth_id)
                if trigger_ms is not None:
                    names = set(campaign.exit_on)
                    for x in ev.exits.get(shopper, ()):
                        if x.name in names and x.id != truth_id and trigger_ms <= x.timestamp_ms < send.at_ms:
                            exit_event = x
                            break
            else:
                truth_exp = truth_by_trigger.get(send.campaign, truth_id)
                if truth_exp is not None and truth_exp.exit_event_id:
                    exit_event = ev.exit_events.get(truth_exp.exit_event_id)
        key = (send.campaign, truth_id)
        if exit_event is not None:
            category = "violation"
        elif exp is not None:
            category = "ok"
        else:
            truth_exp = truth_by_trigger.get(send.campaign, truth_id)
            again = key in served or send.trigger_event_id != truth_id
            if again or (truth_exp is not None and truth_exp.reason == "frequency"):
                category = "duplicate"
            else:
                category = "false"
        served.add(key)
        out.verdicts.append(SendVerdict(send, truth_id, shopper, category, exp, exit_event))
        if exp is not None:
            out.paired[id(exp)] = send
    out.missed = [e for e in ev.truth if e.outcome is _SEND and id(e) not in paired_exp]
    return out


Reproduce = Callable[[int | None], str]
