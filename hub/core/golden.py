"""Golden customers kept as customer records change: the identity stage, streaming.

Step name ``identity``. ``IdentityStage.apply`` takes one record of ``unified.customer.records``
(its key ``<system>:<id>``, its JSON value or None when the row was deleted, its source position)
and re-evaluates the records it can touch: its component, the records reachable from it and from
its previous cluster through blocking keys (``hub.core.identity``). ``resolve`` on that component
gives the same clusters as on every record at once (components are independent), so the golden
customers never depend on the order the records arrived in, and a link that no longer holds
splits its cluster at once.

It publishes what changed: the golden record (``unified.customer``, keyed by golden id, with each
field's value, the member it came from and the policy that chose it), the link of each record to
its golden id (``unified.customer.links``, a tombstone when the record is gone), and typed events
(``unified.customer.events``): ``merged`` {from, into} when a golden id's members all went to
another, ``split`` {from, into[]} when they went to several.

State (``Store``): ``identity:rec:<ref>`` the record's fields, position and blocking keys;
``identity:block:<key>`` the refs holding a key; ``identity:of:<ref>`` its golden id;
``identity:golden:<id>`` the members and a digest of what was published; ``identity:decisions``
the manual decisions (``decide``), in the order they were made.

Pure apart from the ``Store`` it is given.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from hub.core.engine import DependentFailure, Outcome, Store
from hub.core.identity import (
    Decision,
    Decisions,
    Person,
    Resolution,
    Rules,
    blocking_keys,
    golden_fields,
    golden_id,
    resolve,
)
from hub.core.lists import ChunkedList
from hub.core.records import Document, Output, Tombstone, Upsert, content_digest, json_time
from hub.errors import InvalidEvent

STEP = "identity"
RECORDS = "unified.customer.records"  # the stage's input, through CHANGES
CHANGES = "hub.customer.changes"  # the feed: each record of RECORDS, written with it
REQUESTS = "hub.customer.requests"  # manual decisions (``hub customer link|unlink``)
GOLDEN = "unified.customer"
ERASURES = "unified.customer.erasures"  # erasure events: which records the channels erase
ERASED_TOPIC = "hub.customer.erased"  # salted hashes of erased record refs, for every worker
LINKS = "unified.customer.links"
EVENTS = "unified.customer.events"
REC, BLOCK, OF, CLUSTER = "identity:rec:", "identity:block:", "identity:of:", "identity:golden:"
DECISIONS = "identity:decisions"  # the manual decisions, in the order they were made
ERASED = "identity:erased:"  # + salted hash of an erased record ref
STORM = "identity:storm:"  # + blocking key: a merge storm's holders, as a log of joins/leaves
RULES = "identity:rules"  # the digest of the rules the state was made with
IDENTIFYING = ("email", "phone_e164", "given_name", "family_name")  # one is needed


@dataclass(frozen=True, slots=True)
class Cause:
    """The record change that made what is published: its system, source position and commit
    time (all None for a manual decision or an erasure)."""

    system: str | None = None
    position: str | None = None
    committed_at: str | None = None


class IdentityStage:
    """Keeps the golden customers of the records it is given (``apply``), in its ``Store``."""

    def __init__(self, rules: Rules, store: Store, salt: bytes = b"") -> None:
        self.rules, self.store, self.salt = rules, store, salt
        # Blocking keys that crossed the merge-storm limit upwards, and how many records held
        # them: for the runner to report (``take_storms``).
        self.storms: list[tuple[str, int]] = []
        made = (self.store.get(DECISIONS) or {}).get("made", ())
        self.decisions = Decisions.of(Decision(**entry) for entry in made)  # links and bans

    def fresh(self) -> bool:
        """Whether this state was never made (a new worker group): ``seed`` it."""
        return self.store.get(RULES) is None

    def rules_changed(self) -> bool:
        """Whether the state was made with other rules (``rebuild`` applies these)."""
        noted = (self.store.get(RULES) or {}).get("digest")
        return noted is not None and noted != self.rules.digest

    def seed(
        self, records: Mapping[str, Mapping[str, Any]], golden: Mapping[str, Mapping[str, Any]],
        links: Mapping[str, str], decisions: Iterable[Decision], erased: Iterable[str],
        now: datetime,
    ) -> Outcome:  # fmt: skip
        """A new state made from what the topics hold: the records of
        ``unified.customer.records`` (with their positions: older changes read from the feed
        afterwards are replays), the golden customers and links as published (so that only what
        differs from them is published again, never an older state), the manual decisions in
        force and the erased refs' hashes. A new worker group starts so, not from the start of
        the feed, which would publish every customer as it was days ago."""
        for key in erased:
            self.store.put(ERASED + key, {"at": "before this state"})
        trail = list(decisions)
        self.store.put(DECISIONS, {"made": [made.as_json() for made in trail]} if trail else None)
        self.decisions = Decisions.of(trail)
        for gid, content in golden.items():
            self.store.put(CLUSTER + gid, {"members": list(content.get("members", ())),
                                           "d": content_digest(_unstamped(content))})  # fmt: skip
        for ref, gid in links.items():
            self.store.put(OF + ref, {"g": gid})
        blocks: dict[str, list[str]] = {}
        live = []
        for ref, record in sorted(records.items()):
            person = Person.of_record(ref, record)
            if not any(person.value(name) for name in IDENTIFYING):
                continue  # refused, as a change of it would be
            keys = blocking_keys(self.rules, person)
            self.store.put(REC + ref, {"pos": record.get("source_position") or "", "keys": keys,
                                       "person": _person_json(person)})  # fmt: skip
            for key in keys:
                blocks.setdefault(key, []).append(ref)
            live.append(ref)
        for key, refs in blocks.items():
            self._set_block(key, set(refs))
        outcome = self._resolve_all(live, now)
        return Outcome(outcome.outputs + self._drop_orphans(set(links), set(golden)))

    def _drop_orphans(self, refs: set[str], gids: set[str]) -> list[Output]:
        """Tombstones for the links of ``refs`` with no live record behind them any more and for
        the customers of ``gids`` none of whose members points at them (what a holder that
        stopped between a record's change and its customer's left on the topics)."""
        outputs: list[Output] = []
        for ref in sorted(refs):
            if not self._live(ref) and self._golden_of(ref) is not None:
                self.store.put(OF + ref, None)
                outputs.append(Tombstone(LINKS, ref, ""))
        for gid in sorted(gids):
            members = self._members(gid)
            if members and not any(self._golden_of(member) == gid for member in members):
                self.store.put(CLUSTER + gid, None)
                outputs.append(Tombstone(GOLDEN, gid, ""))
        return outputs

    def rebuild(self, refs: Iterable[str], now: datetime) -> Outcome:
        """Every record of ``refs`` this state holds evaluated again with the rules as they are
        now (new blocking keys, new clusters, new golden values): what differs is published, a
        customer the new rules split or merge gets its event, as a change would."""
        live = [ref for ref in sorted(set(refs)) if self._live(ref)]
        for ref in live:
            stored = self.store.get(REC + ref) or {}
            before = set(stored.get("keys", ()))
            after = set(blocking_keys(self.rules, self._person(ref)))
            for key in sorted(before ^ after):
                self._move(key, ref, joins=key in after)
            self.store.put(REC + ref, stored | {"keys": sorted(after)})
        return self._resolve_all(live, now)

    def _resolve_all(self, live: list[str], now: datetime) -> Outcome:
        """Every customer of the records ``live`` made again, what differs published; the rules
        noted as the state's."""
        outputs: list[Output] = []
        done: set[str] = set()
        for ref in live:
            if ref in done:
                continue
            together = self._closure({ref})
            done |= together
            people = [self._person(member) for member in sorted(together)]
            result = resolve(self.rules, people, self.decisions, self._held)
            outputs += self._publish(result, people, set(), Cause(), now).outputs
        self.store.put(RULES, {"digest": self.rules.digest, "version": self.rules.version})
        return Outcome(outputs)

    def _closure(self, seeds: set[str]) -> set[str]:
        """The records reachable from ``seeds`` and, again and again, the members of the
        customers they belonged to: all that a change of rules can move together."""
        found: set[str] = set()
        todo = {seed for seed in seeds if self._live(seed)}
        while todo:
            found |= self._component(todo)
            todo = {member for ref in found for member in self._members(self._golden_of(ref))
                    if self._live(member)} - found  # fmt: skip
        return found

    def take_storms(self) -> list[tuple[str, int]]:
        """The merge storms found since the last call: (blocking key, records holding it)."""
        storms, self.storms = self.storms, []
        return storms

    def erased(self, ref: str) -> bool:
        """Whether ``ref`` was erased and its source has not deleted it since."""
        return self.store.get(ERASED + erasure_key(self.salt, ref)) is not None

    def erase(self, request: Erasure, now: datetime) -> Outcome:
        """Erase the customer of ``request.ref`` (a golden id, or any of its record refs): every
        member's record, link and the golden record become tombstones, the customers they were
        related to are republished without them, the manual decisions naming them are forgotten
        (and their requests tombstoned), an erasure event tells the channels which records to
        erase, and only a salted hash of each record ref is kept (published to ``ERASED`` for
        every worker) so that no replay or late change brings the person back until the source
        deletes the row (``apply`` of a deletion lifts it). A ref the stage has not seen yet is
        blocked all the same."""
        asked = request.ref
        gid = asked if asked.startswith("g-") else self._golden_of(asked)
        refs = set(self._members(gid))
        if not asked.startswith("g-"):
            refs.add(asked)
        if not refs:
            return Outcome(skipped="unknown")
        # The records on unified.customer.records: tombstoned just after their last change.
        last = {ref: stored["pos"] for ref in refs
                if (stored := self.store.get(REC + ref)) is not None and not stored.get("gone")}  # fmt: skip
        outputs = self._update(dict.fromkeys(sorted(refs)), Cause(), now)
        emitted = json_time(now)
        for ref in sorted(refs):
            self.store.put(REC + ref, None)  # not even its position: the hash below blocks it
            key = erasure_key(self.salt, ref)
            self.store.put(ERASED + key, {"at": request.at})
            if ref in last:
                outputs.append(Tombstone(RECORDS, ref, after(last[ref])))
            outputs.append(Document(ERASED_TOPIC, key, {"at": request.at, "who": request.who}))
        forgotten = [made for made in self.decisions.made if {made.a, made.b} & refs]
        if forgotten:
            trail = [made for made in self.decisions.made if made not in forgotten]
            self.store.put(
                DECISIONS, {"made": [made.as_json() for made in trail]} if trail else None
            )
            self.decisions = Decisions.of(trail)
            outputs += [Tombstone(REQUESTS, request_record(made)[0].decode()) for made in forgotten]
        event = {"schema_version": 1, "golden_id": gid, "records": sorted(refs),
                 "requested_at": request.at, "emitted_at": emitted}  # fmt: skip
        outputs.append(Document(ERASURES, gid or asked, event))
        return Outcome(outputs)

    def decide(self, decision: Decision, now: datetime) -> Outcome:
        """A manual decision (``hub customer link`` / ``unlink``), kept with the others in the
        state (replays and rule changes keep it) and applied at once: the customers of both
        records are evaluated again. A decision already made (a replay) changes nothing."""
        if decision in self.decisions.made:
            return Outcome(skipped="duplicate")
        trail = [*self.decisions.made, decision]
        self.store.put(DECISIONS, {"made": [made.as_json() for made in trail]})
        self.decisions = Decisions.of(trail)
        seeds = {decision.a, decision.b}
        for ref in decision.pair:
            seeds |= set(self._members(self._golden_of(ref)))
        people = [self._person(member) for member in sorted(self._component(seeds))]
        return self._publish(resolve(self.rules, people, self.decisions, self._held), people, set(),
                             Cause(), now)  # fmt: skip

    def apply(
        self, ref: str, value: Mapping[str, Any] | None, position: str, now: datetime,
        committed_at: str | None = None,
    ) -> Outcome:  # fmt: skip
        """One change of the record ``ref`` (``value``: its JSON; None: deleted) at source
        ``position``, committed at ``committed_at`` (ISO; by default the record's own
        ``source_committed_at``): the golden records, links and events it changes. An older or
        equal position than the record's last is a replay: nothing. A record with no email, no
        phone and no name cannot be told apart from anyone: it leaves its customer, and the
        outcome's ``failures`` say why (the runner dead-letters the change)."""
        stored = self.store.get(REC + ref)
        if stored is not None and position and stored["pos"] >= position:
            return Outcome(skipped="duplicate")
        key = erasure_key(self.salt, ref)
        if self.store.get(ERASED + key) is not None:
            if value is not None:  # a replay or a late change of an erased record: erased again
                return Outcome([Tombstone(RECORDS, ref, after(position))], skipped="erased")
            self.store.put(ERASED + key, None)  # deleted at its source: nothing left to block
            return Outcome([Tombstone(ERASED_TOPIC, key, position)], skipped="erased")
        person = Person.of_record(ref, value) if value is not None else None
        refused: list[DependentFailure] = []
        if person is not None and not any(person.value(name) for name in IDENTIFYING):
            refused.append(DependentFailure(ref, dict(value or {}), InvalidEvent(
                "no_identity", f"{ref}: no email, no phone and no name: nothing tells who this "
                "customer is; it stays out of the golden customers until its source fills one in",
            )))  # fmt: skip
            person = None
        if committed_at is None and value is not None:
            committed_at = value.get("source_committed_at")
        cause = Cause(ref.partition(":")[0], position, committed_at)
        return Outcome(self._update({ref: person}, cause, now), failures=refused)

    def _update(
        self, changes: Mapping[str, Person | None], cause: Cause, now: datetime
    ) -> list[Output]:
        """Records changed (None: gone) by ``cause``: their customers evaluated again."""
        seeds: set[str] = set()
        for ref, person in changes.items():
            stored = self.store.get(REC + ref)
            before = set(stored.get("keys", ())) if stored else set()
            after = set(blocking_keys(self.rules, person)) if person is not None else set()
            seeds |= {ref} | set(self._members(self._golden_of(ref)))
            for key in sorted(before - after):  # its old neighbours: their related records change
                refs = (self.store.get(BLOCK + key) or {}).get("refs", ())
                if len(refs) <= self.rules.spec.max_block:
                    seeds.update(refs)
            for key in sorted(before ^ after):
                seeds |= self._move(key, ref, joins=key in after)
            if person is None:
                self.store.put(REC + ref, {"pos": cause.position or "", "gone": True})
            else:
                self.store.put(REC + ref, {"pos": cause.position, "keys": sorted(after),
                                           "person": _person_json(person)})  # fmt: skip
        component = self._component(seeds)
        people = [self._person(member) for member in sorted(component)]
        result = resolve(self.rules, people, self.decisions, self._held)
        gone = {ref for ref, person in changes.items() if person is None}
        return self._publish(result, people, gone, cause, now).outputs

    # -- state

    def _move(self, key: str, ref: str, joins: bool) -> set[str]:
        """Put ``ref`` in or out of the block of ``key``; the refs whose candidates change with
        it (all of the block's when it crossed the merge-storm limit, either way).

        A block under the limit keeps its refs in its entry. A merge storm (over the limit)
        keeps only a count there, and its holders as a log of joins and leaves (``STORM``,
        appended at a bounded cost however many hold the key), read back only when it falls
        under the limit again."""
        limit = self.rules.spec.max_block
        head = self.store.get(BLOCK + key) or {}
        if "count" in head:
            count = head["count"] + (1 if joins else -1)
            log = ChunkedList(self.store, STORM + key)
            if count > limit:
                log.append(("+" if joins else "-") + ref)
                self.store.put(BLOCK + key, {"count": count})
                return set()
            holders = _replay([*log.items(), ("+" if joins else "-") + ref])
            log.drop()
            self.store.put(BLOCK + key, {"refs": sorted(holders)} if holders else None)
            return holders
        refs = set(head.get("refs", ()))
        if joins:
            refs.add(ref)
        else:
            refs.discard(ref)
        self._set_block(key, refs)
        if len(refs) > limit:
            self.storms.append((key, len(refs)))
            return refs
        return set()

    def _set_block(self, key: str, refs: set[str]) -> None:
        """The entry of a block held by ``refs``: the refs, or a merge storm's count and log."""
        if len(refs) > self.rules.spec.max_block:
            self.store.put(BLOCK + key, {"count": len(refs)})
            ChunkedList(self.store, STORM + key).rewrite("+" + ref for ref in sorted(refs))
        else:
            self.store.put(BLOCK + key, {"refs": sorted(refs)} if refs else None)

    def _component(self, seeds: Iterable[str]) -> set[str]:
        """The live records reachable from ``seeds`` through blocking keys under the limit."""
        seen: set[str] = set()
        decided = self.decisions.links | self.decisions.bans
        todo = [seed for seed in seeds if self._live(seed)]
        while todo:
            ref = todo.pop()
            if ref in seen:
                continue
            seen.add(ref)
            for key in (self.store.get(REC + ref) or {}).get("keys", ()):
                refs = (self.store.get(BLOCK + key) or {}).get("refs", ())
                if len(refs) <= self.rules.spec.max_block:
                    todo += [other for other in refs if other not in seen]
            todo += [other for pair in decided if ref in pair
                     for other in pair if other not in seen and self._live(other)]  # fmt: skip
        return seen

    def _held(self, key: str) -> int:
        """How many records hold blocking key ``key`` (merge storms are judged on all)."""
        head = self.store.get(BLOCK + key) or {}
        return int(head.get("count") or len(head.get("refs", ())))

    def _live(self, ref: str) -> bool:
        stored = self.store.get(REC + ref)
        return stored is not None and not stored.get("gone")

    def _person(self, ref: str) -> Person:
        fields = dict((self.store.get(REC + ref) or {})["person"])
        return Person.of_record(ref, fields)

    def _golden_of(self, ref: str) -> str | None:
        return (self.store.get(OF + ref) or {}).get("g")

    def _members(self, gid: str | None) -> list[str]:
        return list((self.store.get(CLUSTER + gid) or {}).get("members", ())) if gid else []

    # -- output

    def _publish(
        self, result: Resolution, people: list[Person], gone: set[str], cause: Cause,
        now: datetime,
    ) -> Outcome:  # fmt: skip
        """The records that changed, after ``cause``."""
        position = cause.position
        by_ref = {person.ref: person for person in people}
        previous = {ref: self._golden_of(ref) for ref in (*by_ref, *gone)}
        was = {gid: self._members(gid) for gid in set(previous.values()) if gid}
        outputs: list[Output] = []
        now_ids: dict[str, str] = {}
        emitted = json_time(now)
        for cluster in result.clusters:
            members = [by_ref[ref] for ref in cluster]
            gid = golden_id(members)
            now_ids |= dict.fromkeys(cluster, gid)
            content = self._golden(gid, members, result)
            digest = content_digest(content)
            kept = self.store.get(CLUSTER + gid) or {}
            if kept.get("d") != digest:
                stamp = {"source_system": cause.system, "source_position": position,
                         "source_committed_at": cause.committed_at, "emitted_at": emitted}  # fmt: skip
                outputs.append(Document(GOLDEN, gid, content | stamp, position or ""))
                self.store.put(CLUSTER + gid, {"members": list(cluster), "d": digest})
        for ref in sorted(previous):
            joined = now_ids.get(ref)
            if joined == previous[ref]:
                continue
            if joined is None:
                outputs.append(Tombstone(LINKS, ref, position or ""))
                self.store.put(OF + ref, None)
            else:
                link = {"schema_version": 1, "ref": ref, "golden_id": joined, "emitted_at": emitted}
                outputs.append(Document(LINKS, ref, link, position or ""))
                self.store.put(OF + ref, {"g": joined})
        for old in sorted(was):
            into = sorted({now_ids[ref] for ref in was[old] if ref in now_ids})
            if old not in now_ids.values():
                outputs.append(Tombstone(GOLDEN, old, position or ""))
                self.store.put(CLUSTER + old, None)
            if into and into != [old]:
                kind = "split" if len(into) > 1 else "merged"
                event = {"schema_version": 1, "event": kind, "from": old,
                         "into": into if kind == "split" else into[0],
                         "source_position": position, "emitted_at": emitted}  # fmt: skip
                outputs.append(Document(EVENTS, old, event, position or ""))
        return Outcome(outputs)

    def _golden(self, gid: str, members: list[Person], result: Resolution) -> dict[str, Any]:
        refs = {person.ref for person in members}
        fields = golden_fields(self.rules, members)
        links = [{"a": link.a, "b": link.b, "rule": link.rule, "score": link.score}
                 for link in result.links if link.a in refs]  # fmt: skip
        related = [
            {"member": a, "record": b, "rule": why.rule, "detail": why.detail}
            for why in result.apart
            for a, b in ((why.a, why.b), (why.b, why.a)) if a in refs and b not in refs
        ]  # fmt: skip
        return {"schema_version": 1, "golden_id": gid, "members": sorted(refs), "fields": fields,
                "links": links, "related": related,
                "rules_version": self.rules.version}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Change:
    """A record of ``unified.customer.records`` as the feed carries it."""

    ref: str
    record: dict[str, Any] | None
    position: str
    committed_at: str | None


def feed_record(output: Output) -> tuple[bytes, bytes]:
    """The feed's record (key: the record ref; value) of a ``unified.customer.records`` output:
    every customer change meets in the feed's one partition, whichever worker made it."""
    record: dict[str, Any] | None = None
    if isinstance(output, Upsert):
        record = output.content if output.content is not None else output.record.model_dump(
            mode="json")  # fmt: skip
    elif isinstance(output, Document):
        record = output.content
    committed = record.get("source_committed_at") if record else None
    envelope = {"key": output.key, "position": output.position, "committed_at": committed,
                "record": record}  # fmt: skip
    return output.key.encode(), orjson.dumps(envelope)


def feed_change(value: bytes | None) -> Change:
    """The change a record of the feed (``feed_record``) carries; raises ``InvalidEvent``."""
    try:
        envelope = orjson.loads(value or b"")
        ref, position, record = envelope["key"], envelope["position"], envelope["record"]
        committed = envelope.get("committed_at")
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidEvent("invalid_record", f"not a customer feed record: {exc!r}") from exc
    if (not isinstance(ref, str) or ":" not in ref or not isinstance(position, str)
            or not (record is None or isinstance(record, dict))
            or not (committed is None or isinstance(committed, str))):  # fmt: skip
        raise InvalidEvent("invalid_record", "not a customer feed record: key, position, record")
    return Change(ref, record, position, committed)


def request_record(decision: Decision) -> tuple[bytes, bytes]:
    """The record of ``hub.customer.requests`` asking for ``decision``: its own key (the
    compacted topic keeps every decision ever made, the audit trail)."""
    key = f"{decision.at}|{decision.kind}|{decision.a}|{decision.b}"
    return key.encode(), orjson.dumps(decision.as_json())


@dataclass(frozen=True, slots=True)
class Erasure:
    """A request to erase a customer (``hub customer erase``): a golden id or a record ref."""

    ref: str
    who: str
    why: str
    at: str

    def as_json(self) -> dict[str, str]:
        return {"kind": "erase", "ref": self.ref, "who": self.who, "why": self.why, "at": self.at}


def erasure_record(erasure: Erasure) -> tuple[bytes, bytes]:
    """The record of ``hub.customer.requests`` asking for ``erasure`` (the stage tombstones it
    once done: the ref it names does not stay there)."""
    return f"{erasure.at}|erase|{erasure.ref}".encode(), orjson.dumps(erasure.as_json())


def after(position: str) -> str:
    """A position just after ``position`` in its source's order and before any later change
    (positions sort as text within a source): where the stage puts the tombstone of an erased
    record on unified.customer.records, after the change it erases."""
    return f"{position}:erased"


def erasure_key(salt: bytes, ref: str) -> str:
    """What is kept of an erased record ref: a keyed hash, unreadable without the salt."""
    return hashlib.blake2b(ref.encode(), key=salt[:64], digest_size=16).hexdigest()


def request_of(value: bytes | None) -> Decision | Erasure:
    """What a record of ``hub.customer.requests`` asks for; raises ``InvalidEvent``."""
    try:
        fields = orjson.loads(value or b"")
        if isinstance(fields, dict) and fields.get("kind") == "erase":
            erasure = Erasure(**{name: fields[name] for name in ("ref", "who", "why", "at")})
            if not all(isinstance(v, str) and v for v in (erasure.ref, erasure.who, erasure.at)):
                raise TypeError("ref, who and at must be text")
            return erasure
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise InvalidEvent("invalid_request", f"not a customer erasure: {exc!r}") from exc
    return request_decision(value)


def request_decision(value: bytes | None) -> Decision:
    """The decision a record of ``hub.customer.requests`` asks for; raises ``InvalidEvent``."""
    try:
        fields = orjson.loads(value or b"")
        decision = Decision(**{name: fields[name] for name in DECISION_FIELDS})
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise InvalidEvent("invalid_request", f"not a customer decision: {exc!r}") from exc
    if decision.kind not in ("link", "unlink") or not all(
        isinstance(fields[name], str) and fields[name] for name in DECISION_FIELDS
    ) or decision.a == decision.b:  # fmt: skip
        raise InvalidEvent("invalid_request", "a decision is link or unlink of two different "
                                              "records, with who, why and when")  # fmt: skip
    return decision


DECISION_FIELDS = ("kind", "a", "b", "who", "why", "at")


STAMPS = ("source_system", "source_position", "source_committed_at", "emitted_at")


def _replay(log: Iterable[str]) -> set[str]:
    """The holders a merge storm's log of joins (``+ref``) and leaves (``-ref``) leaves."""
    holders: set[str] = set()
    for entry in log:
        if entry[0] == "+":
            holders.add(entry[1:])
        else:
            holders.discard(entry[1:])
    return holders


def _unstamped(content: Mapping[str, Any]) -> dict[str, Any]:
    """A golden record as the stage compares it: without what says when and why it was made."""
    return {name: value for name, value in content.items() if name not in STAMPS}


def _person_json(person: Person) -> dict[str, Any]:
    return {"email": person.email, "phone_e164": person.phone_e164,
            "given_name": person.given_name, "family_name": person.family_name,
            "postcode": person.postcode, "marketing_consent": person.marketing_consent,
            "created_at": person.created_at.isoformat() if person.created_at else None,
            "updated_at": person.updated_at.isoformat() if person.updated_at else None}  # fmt: skip
