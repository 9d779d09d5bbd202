"""Identity resolution: which customer records are one person.

Step name ``identity``. The rules are declared once, in ``connectors/identity.yaml``
(``parse_rules`` validates a parsed document and raises ``IdentityRulesError`` naming the entry
at fault):

- a **match** rule links two records when every one of its comparisons holds; its score is the
  mean of their similarities. Its ``exact`` fields make its blocking key: a record is compared
  only with the records that share one of its keys, never with all.
- an **apart** rule (negative evidence) keeps two records that share one of its ``shared`` fields
  apart when its ``differ`` comparison is below a threshold: a family email, a household phone.
- a blocking key held by more records than ``max_block`` (a placeholder email, a store's phone on
  every walk-in card) links nothing; ``Resolution.storms`` says which.

``resolve`` makes the clusters of a set of records: links strongest first (ties broken by rule
and refs), each merging two clusters unless the merge would put two records kept apart (an apart
rule, a manual ban) into one; manual links go first. Negative evidence therefore holds across a
cluster, not only pairwise: when A~B and B~C but A and C are kept apart, the weakest of the links
that would join them is cut. The result depends on the set of records alone, never on the order
they arrived in.

Pure: no I/O, no Faust, no Kafka.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rapidfuzz.distance import JaroWinkler

from hub.errors import RegistryError

STEP = "identity"
Compare = Literal["exact", "name"]
FIELDS = ("email", "phone_e164", "given_name", "family_name", "postcode")
NAME = r"^[a-z0-9][a-z0-9_.-]*$"


class IdentityRulesError(RegistryError):
    """The identity rules file is malformed or names a field or comparator that does not exist."""


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Comparison(_Spec):
    """One field of two records compared: ``exact`` (equal once normalised) or ``name``
    (Jaro-Winkler similarity of the normalised names; nicknames of one name count as equal)."""

    field: Literal["email", "phone_e164", "given_name", "family_name", "postcode"]
    compare: Compare
    min: float | None = Field(default=None, gt=0, le=1)  # name: the similarity it needs
    below: float | None = Field(default=None, gt=0, le=1)  # apart: differ when under this


class MatchRule(_Spec):
    name: str = Field(pattern=NAME)
    when: tuple[Comparison, ...] = Field(min_length=1)


class ApartRule(_Spec):
    name: str = Field(pattern=NAME)
    shared: tuple[Literal["email", "phone_e164", "given_name", "family_name", "postcode"], ...] = (
        Field(min_length=1)
    )
    differ: Comparison


Policy = Literal["most_recent", "most_complete", "latest_explicit", "trusted"]
GOLDEN_FIELDS = (*FIELDS, "marketing_consent")


class SurvivorshipSpec(_Spec):
    """Which member's value a golden record takes, per field: ``most_recent`` (the latest
    updated member that has one), ``most_complete`` (from the member with the most identity
    fields), ``latest_explicit`` (the latest choice made; on a tie, no over yes), ``trusted``
    (the first system in ``trust`` that has one). Ties go to the more trusted system, then the
    smaller record ref."""

    trust: tuple[str, ...] = ()
    fields: dict[
        Literal["email", "phone_e164", "given_name", "family_name", "postcode",
                "marketing_consent"],
        Policy,
    ] = {}  # fmt: skip


class RulesSpec(_Spec):
    version: int = Field(ge=1)
    max_block: int = Field(default=50, ge=2)
    match: tuple[MatchRule, ...] = Field(min_length=1)
    apart: tuple[ApartRule, ...] = ()
    nicknames: dict[str, tuple[str, ...]] = {}
    survivorship: SurvivorshipSpec = SurvivorshipSpec()


@dataclass(frozen=True)
class Rules:
    """The validated rules, with the nickname table turned into name → the names it stands for."""

    spec: RulesSpec
    names: Mapping[str, frozenset[str]]

    @property
    def version(self) -> int:
        return self.spec.version

    @property
    def digest(self) -> str:
        """What tells two rule sets apart (a changed threshold without a new version too)."""
        return hashlib.blake2b(self.spec.model_dump_json().encode(), digest_size=8).hexdigest()


def parse_rules(document: Any, origin: str = "the identity rules") -> Rules:
    """Validate a parsed rules document; raises ``IdentityRulesError`` saying what is wrong where."""
    if not isinstance(document, dict):
        raise IdentityRulesError(f"{origin}: expected a mapping with version, match, apart, …")
    try:
        spec = RulesSpec(**document)
    except (ValidationError, TypeError) as exc:
        raise IdentityRulesError(f"{origin}: {exc}") from exc
    problems: list[str] = []
    seen: set[str] = set()
    for name in [rule.name for rule in spec.match] + [rule.name for rule in spec.apart]:
        if name in seen:
            problems.append(f"rule {name!r}: the name is used twice")
        seen.add(name)
    for rule in spec.match:
        where = f"match rule {rule.name!r}"
        if not any(c.compare == "exact" for c in rule.when):
            problems.append(f"{where}: needs an exact comparison (its blocking key); without one "
                            "every record would be compared with every other")  # fmt: skip
        for comparison in rule.when:
            if comparison.below is not None:
                problems.append(f"{where}: 'below' is for apart rules; a match needs 'min'")
            if comparison.compare == "name" and comparison.min is None:
                problems.append(f"{where}: a name comparison of {comparison.field} needs 'min'")
            if comparison.compare == "exact" and comparison.min is not None:
                problems.append(f"{where}: an exact comparison of {comparison.field} takes no min")
    for negative in spec.apart:
        where = f"apart rule {negative.name!r}"
        if negative.differ.compare != "name" or negative.differ.below is None:
            problems.append(f"{where}: differ must be a name comparison with 'below'")
        if negative.differ.field in negative.shared:
            problems.append(f"{where}: {negative.differ.field} cannot be shared and differ at once")
    names: dict[str, set[str]] = {}
    for canonical, others in spec.nicknames.items():
        for name in (canonical, *others):
            normalised = fold(name)
            if not normalised:
                problems.append(f"nickname {name!r} of {canonical!r}: no letters")
            names.setdefault(normalised, set()).add(fold(canonical))
    missing = [name for name in GOLDEN_FIELDS if name not in spec.survivorship.fields]
    if missing:
        problems.append(f"survivorship: say how each golden field is chosen; missing {missing}")
    if problems:
        raise IdentityRulesError(f"{origin}: " + "; ".join(problems))
    return Rules(spec, {name: frozenset(canonicals) for name, canonicals in names.items()})


# -- records and comparisons


@dataclass(frozen=True, slots=True)
class Person:
    """What identity resolution reads of one customer record (``unified.customer.records``)."""

    ref: str  # <source_system>:<source_id>
    email: str | None = None
    phone_e164: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    postcode: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    marketing_consent: bool | None = None

    @classmethod
    def of_record(cls, ref: str, record: Mapping[str, Any]) -> Person:
        """From a ``unified.customer.records`` record's JSON form."""
        values = {name: record.get(name) or None for name in FIELDS}
        created, updated = (datetime.fromisoformat(record[name]) if record.get(name) else None
                            for name in ("created_at", "updated_at"))  # fmt: skip
        return cls(ref, **values, created_at=created, updated_at=updated,
                   marketing_consent=record.get("marketing_consent"))  # fmt: skip

    @property
    def system(self) -> str:
        return self.ref.partition(":")[0]

    def value(self, name: str) -> str | None:
        return getattr(self, name)  # type: ignore[no-any-return]


def fold(text: str) -> str:
    """A name or value as compared: accents and case gone, only letters, digits, @ . + and
    single spaces kept (``Jean-Baptiste`` → ``jean baptiste``)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    kept = "".join(c if c.isalnum() or c in "@.+" else " " for c in decomposed
                   if not unicodedata.combining(c))  # fmt: skip
    return " ".join(kept.split())


def plain(text: str) -> str:
    """A value as compared exactly: case and surrounding spaces aside, every character counts
    (``jean_paul@…`` and ``jean-paul@…`` are two addresses)."""
    return unicodedata.normalize("NFKC", text).strip().casefold()


def similarity(rules: Rules, comparison: Comparison, a: str, b: str) -> float:
    """How alike two non-empty values are, 0 to 1, by ``comparison``."""
    if comparison.compare == "exact":
        left = plain(a)
        return 1.0 if left and left == plain(b) else 0.0
    left, right = fold(a), fold(b)
    if left == right or (rules.names.get(left, {left}) | {left}) & (
        rules.names.get(right, {right}) | {right}
    ):
        return 1.0  # one name, or nicknames of one name (Bob and Robert)
    return float(JaroWinkler.normalized_similarity(left, right))


@dataclass(frozen=True, slots=True)
class Link:
    """Why two records are one person: the rule, the fields it matched on, its score."""

    a: str
    b: str
    rule: str
    score: float
    features: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Apart:
    """Why two records are kept apart: a rule (or a manual ban) and what it saw."""

    a: str
    b: str
    rule: str
    detail: str


def match(rules: Rules, x: Person, y: Person) -> Link | None:
    """The strongest match rule that links ``x`` and ``y`` (ties: the first declared)."""
    best: Link | None = None
    for rule in rules.spec.match:
        scores = []
        for comparison in rule.when:
            left, right = x.value(comparison.field), y.value(comparison.field)
            score = similarity(rules, comparison, left, right) if left and right else 0.0
            needed = comparison.min if comparison.compare == "name" and comparison.min else 1.0
            if score < needed or score == 0.0:
                break
            scores.append(score)
        else:
            score = round(sum(scores) / len(scores), 6)
            if best is None or score > best.score:
                best = Link(*_pair(x.ref, y.ref), rule.name, score,
                            tuple(c.field for c in rule.when))  # fmt: skip
    return best


def apart(rules: Rules, x: Person, y: Person) -> Apart | None:
    """The first apart rule that keeps ``x`` and ``y`` apart."""
    for rule in rules.spec.apart:
        shared = [name for name in rule.shared
                  if x.value(name) and y.value(name)
                  and plain(x.value(name) or "") == plain(y.value(name) or "")]  # fmt: skip
        left, right = x.value(rule.differ.field), y.value(rule.differ.field)
        if not shared or not left or not right:
            continue
        score = similarity(rules, rule.differ, left, right)
        if score < (rule.differ.below or 0.0):
            return Apart(*_pair(x.ref, y.ref), rule.name, f"share {', '.join(shared)}; {rule.differ.field} "
                                          f"{left!r} vs {right!r} ({score:.2f})")  # fmt: skip
    return None


def blocking_keys(rules: Rules, person: Person) -> list[str]:
    """The keys ``person`` is compared under: per match rule, its exact fields' values."""
    keys = []
    for rule in rules.spec.match:
        values = [person.value(c.field) for c in rule.when if c.compare == "exact"]
        if all(values):
            keys.append(f"{rule.name}|" + "|".join(plain(v or "") for v in values))
    return keys


def block_index(rules: Rules, people: Iterable[Person]) -> dict[str, list[str]]:
    """Blocking key → the refs of ``people`` holding it, sorted."""
    blocks: dict[str, list[str]] = {}
    for person in sorted(people, key=lambda person: person.ref):
        for key in blocking_keys(rules, person):
            blocks.setdefault(key, []).append(person.ref)
    return blocks


def reachable(
    rules: Rules, people: Iterable[Person], seeds: Iterable[str], decisions: Decisions,
    blocks: Mapping[str, list[str]],
) -> list[Person]:  # fmt: skip
    """The records a customer of ``seeds`` can be made of: reachable through the blocking keys
    of ``blocks`` (``block_index`` of all records) under the merge-storm limit and through manual
    decisions. ``resolve`` on them gives the clusters a resolution of all records gives them."""
    by_ref = {person.ref: person for person in people}
    decided = decisions.links | decisions.bans
    seen: set[str] = set()
    todo = [seed for seed in seeds if seed in by_ref]
    while todo:
        ref = todo.pop()
        if ref in seen:
            continue
        seen.add(ref)
        for key in blocking_keys(rules, by_ref[ref]):
            if len(blocks[key]) <= rules.spec.max_block:
                todo += blocks[key]
        todo += [other for pair in decided if ref in pair for other in pair if other in by_ref]
    return [by_ref[ref] for ref in sorted(seen)]


# -- clusters


@dataclass(frozen=True, slots=True)
class Decision:
    """A manual decision, audited: two records forced together (``link``) or kept apart
    (``unlink``), by whom, why, when. The latest decision on a pair replaces the earlier ones."""

    kind: Literal["link", "unlink"]
    a: str
    b: str
    who: str
    why: str
    at: str  # ISO time it was made

    @property
    def pair(self) -> tuple[str, str]:
        return _pair(self.a, self.b)

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind, "a": self.a, "b": self.b, "who": self.who, "why": self.why,
                "at": self.at}  # fmt: skip


@dataclass(frozen=True)
class Decisions:
    """Manual decisions: pairs forced together (``links``) or kept apart (``bans``)."""

    links: frozenset[tuple[str, str]] = frozenset()
    bans: frozenset[tuple[str, str]] = frozenset()
    made: tuple[Decision, ...] = ()  # the audit trail, in the order they were made

    @classmethod
    def of(cls, made: Iterable[Decision]) -> Decisions:
        """The decisions in force after ``made`` (in order): the latest per pair."""
        trail = tuple(made)
        latest = {decision.pair: decision for decision in trail}
        return cls(frozenset(p for p, d in latest.items() if d.kind == "link"),
                   frozenset(p for p, d in latest.items() if d.kind == "unlink"), trail)  # fmt: skip

    def about(self, refs: Iterable[str]) -> list[Decision]:
        """The decisions that name one of ``refs``, oldest first."""
        wanted = set(refs)
        return [d for d in self.made if d.a in wanted or d.b in wanted]


@dataclass
class Resolution:
    """The clusters of a set of records and the evidence behind them."""

    clusters: list[tuple[str, ...]] = field(default_factory=list)  # sorted refs, sorted clusters
    links: list[Link] = field(default_factory=list)  # the links that made the clusters
    cut: list[tuple[Link, Apart]] = field(default_factory=list)  # links refused, and why
    apart: list[Apart] = field(default_factory=list)  # every pair kept apart that was compared
    storms: dict[str, int] = field(default_factory=dict)  # blocking key → records, over the limit

    def cluster_of(self, ref: str) -> tuple[str, ...]:
        return next(cluster for cluster in self.clusters if ref in cluster)


def resolve(
    rules: Rules, people: Iterable[Person], decisions: Decisions = Decisions(),
    held: Callable[[str], int] | None = None,
) -> Resolution:  # fmt: skip
    """The clusters of ``people`` (see the module's docstring). ``held``: how many records hold a
    blocking key in all (by default: how many of ``people`` do); a part of the records resolved
    alone must judge merge storms by the whole, as a resolution of every record would."""
    by_ref = {person.ref: person for person in people}
    blocks = block_index(rules, by_ref.values())
    result = Resolution()
    pairs: set[tuple[str, str]] = set()
    for key, refs in sorted(blocks.items()):
        holders = len(refs) if held is None else max(len(refs), held(key))
        if holders > rules.spec.max_block:
            result.storms[key] = holders
            continue
        pairs.update((a, b) for i, a in enumerate(refs) for b in refs[i + 1 :])
    links: list[Link] = []
    kept_apart: dict[tuple[str, str], Apart] = {}
    for a, b in sorted(pairs):
        found = apart(rules, by_ref[a], by_ref[b])
        if found is not None:
            kept_apart[(a, b)] = found
        elif (link := match(rules, by_ref[a], by_ref[b])) is not None:
            links.append(link)
    for a, b in (_pair(*ban) for ban in sorted(decisions.bans)):
        if a in by_ref and b in by_ref:
            kept_apart[(a, b)] = Apart(a, b, "manual-ban", "unlinked by hand")
    forced = [Link(a, b, "manual-link", 1.0, ())
              for a, b in (_pair(*link) for link in sorted(decisions.links))
              if a in by_ref and b in by_ref]  # fmt: skip
    links.sort(key=lambda link: (-link.score, link.rule, link.a, link.b))
    result.apart = sorted(kept_apart.values(), key=lambda found: (found.a, found.b))
    cluster = {ref: frozenset({ref}) for ref in by_ref}
    apart_of: dict[str, set[str]] = {}
    for a, b in kept_apart:
        apart_of.setdefault(a, set()).add(b)
        apart_of.setdefault(b, set()).add(a)
    for link in (*forced, *links):
        left, right = cluster[link.a], cluster[link.b]
        if left is right:
            continue
        clash = next(((x, y) for x in left for y in apart_of.get(x, ()) if y in right), None)
        if clash is not None and link.rule != "manual-link":
            result.cut.append((link, kept_apart[_pair(*clash)]))
            continue
        merged = left | right
        for ref in merged:
            cluster[ref] = merged
        result.links.append(link)
    result.clusters = sorted({tuple(sorted(members)) for members in cluster.values()})
    return result


def explain(
    rules: Rules, resolution: Resolution, people: Iterable[Person], ref: str,
    decisions: Decisions | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Why ``ref``'s customer is who it is, as data (``hub customer explain`` prints it): its
    members, the links that join them (rule, matched fields, score), what was kept out and why
    (links cut by negative evidence or a ban, pairs kept apart), each golden field's survivor,
    and the manual decisions about its members (who, why, when)."""
    decisions = decisions or Decisions()
    by_ref = {person.ref: person for person in people}
    members = resolution.cluster_of(ref)
    inside = set(members)

    def touches(a: str, b: str) -> bool:
        return a in inside or b in inside

    return {
        "golden_id": golden_id(by_ref[member] for member in members),
        "members": list(members),
        "links": [{"a": link.a, "b": link.b, "rule": link.rule, "features": list(link.features),
                   "score": link.score} for link in resolution.links if link.a in inside],
        "cut": [{"a": link.a, "b": link.b, "rule": link.rule, "score": link.score,
                 "kept_apart_by": {"a": why.a, "b": why.b, "rule": why.rule, "detail": why.detail}}
                for link, why in resolution.cut if touches(link.a, link.b)],
        "apart": [{"a": why.a, "b": why.b, "rule": why.rule, "detail": why.detail}
                  for why in resolution.apart if touches(why.a, why.b)],
        "fields": golden_fields(rules, [by_ref[member] for member in members]),
        "decisions": [decision.as_json() for decision in decisions.about(inside)],
        "rules_version": rules.version,
    }  # fmt: skip


def golden_id(people: Iterable[Person]) -> str:
    """A cluster's id, from its anchor: the member created first (no date: last; ties: the
    smallest ref). A record that joins later does not change it; rebuilding everything from the
    raw topics gives it again (no counter, no arrival order)."""
    anchor = min(people, key=lambda p: (p.created_at is None, p.created_at or datetime.min, p.ref))
    return "g-" + hashlib.blake2b(anchor.ref.encode(), digest_size=8).hexdigest()


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


# -- the golden record


@dataclass(frozen=True, slots=True)
class Survivor:
    """A golden field's value, the member record it came from and the policy that chose it."""

    value: str | bool
    ref: str
    policy: Policy


def survivors(rules: Rules, people: Iterable[Person]) -> dict[str, Survivor]:
    """The golden record of one cluster: per field that some member has, the surviving value."""
    members = sorted(people, key=lambda person: person.ref)
    spec = rules.spec.survivorship
    policies: dict[str, Policy] = {name: policy for name, policy in spec.fields.items()}
    trust = {system: rank for rank, system in enumerate(spec.trust)}

    def rank(person: Person) -> tuple[int, str]:  # smaller: preferred on a tie
        return trust.get(person.system, len(trust)), person.ref

    def newest(person: Person) -> float:
        return person.updated_at.timestamp() if person.updated_at else float("-inf")

    found: dict[str, Survivor] = {}
    for name in GOLDEN_FIELDS:
        policy = policies.get(name, "most_recent")
        having = [person for person in members if getattr(person, name) is not None]
        if not having:
            continue
        if policy == "trusted":
            chosen = min(having, key=lambda p: (rank(p), -newest(p)))
        elif policy == "most_complete":
            chosen = min(having, key=lambda p: (-sum(bool(p.value(f)) for f in FIELDS), rank(p)))
        elif policy == "latest_explicit":  # on a tie in time, no (False) over yes
            chosen = min(having, key=lambda p: (-newest(p), bool(p.marketing_consent), rank(p)))
        else:
            chosen = min(having, key=lambda p: (-newest(p), rank(p)))
        found[name] = Survivor(getattr(chosen, name), chosen.ref, policy)
    return found


def golden_fields(rules: Rules, people: Iterable[Person]) -> dict[str, dict[str, Any]]:
    """``survivors`` in the JSON form the golden record carries: value, record, policy."""
    return {name: {"value": survivor.value, "record": survivor.ref, "policy": survivor.policy}
            for name, survivor in survivors(rules, people).items()}  # fmt: skip
