"""The oracle: DESIGN §6's invariant, checked on what a run recorded, and the shrinker.

An epoch of a key is what happened to it after the last sync point that preceded one of its
writes: everything before that sync point had been synced both ways, so only the epoch's writes
may show in the end (rule 3), and they decide how the key ends (rules 4, 5, 7, and the policy where
the epoch's writes were all made with no relay running in between, so that they all are inside
one replication window).

Rules (the ids printed on failure):
  1   convergence: DynamoDB's item is what MongoDB's document maps to (dynamo2mongo's mapping)
  1t  types: ... and what it means by the table's schema (a set stays a set, a 37-digit number a number)
  2   the final state is the content of some application write of the key (or its seed, or absent
      after a delete or TTL expiry)
  3   a write after a sync point supersedes every write before it
  4   a final state other than the epoch's last write is named by a conflict record
  5   a key written by one side only in its epoch ends as that side's last write, with no conflict
  6   poison is quarantined, and no relay stalls (every other key converges)
  7   a TTL expiry leaves the key absent on both sides, with no conflict, and is not an independent
      DynamoDB write
  8   policy: a conflict inside one replication window ends as the policy says
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

import bson

from tests.model.history import SCHEMA, History, show, show_item
from dynamo2mongo.mapping import item_to_document
from tests.model.runner import KEY as KEY_ATTRS, POISON, Env, Event, Outcome, model_item, project_item, run

# Shrinking re-runs the history; bounded so that a failing CI seed still ends in reasonable time.
SHRINK_SECONDS = float(os.environ.get("D2M_MODEL_SHRINK_SECONDS", "12"))
# Two writes closer than this are a tie for latest_wins: the model does not decide it.
LATEST_TOLERANCE = 0.05


@dataclass
class Violation:
    rule: str
    key: str | None
    message: str

    def __str__(self) -> str:
        return f"rule {self.rule}{f' key {self.key}' if self.key else ''}: {self.message}"


def _ident(value: Any) -> bytes:
    return bson.encode({"k": value})


def _show(content: Any) -> str:
    return "POISON" if content is POISON else show_item(content)


def _epoch_start(events: list[Event], sync_points: list[int]) -> int:
    writes = [e.step for e in events if e.side != "ttl"] or [e.step for e in events]
    if not writes:
        return 0
    return max((s for s in sync_points if s < writes[-1]), default=0)


def _conflicts_since(outcome: Outcome, key: int, since: int) -> int:
    before = outcome.conflict_counts.get(since, {}).get(key, 0)
    final = max(outcome.conflict_counts)
    return outcome.conflict_counts[final].get(key, 0) - before


def check(outcome: Outcome) -> list[Violation]:
    found: list[Violation] = []
    quarantined = {_ident(q["_id"].get("k")) for q in outcome.quarantine if isinstance(q.get("_id"), dict)}
    stops: dict[str, list[str]] = {}
    for error in outcome.errors:
        step, _, text = error.splitlines()[0].partition(": ")
        stops.setdefault(text, []).append(step)
    for text, steps in stops.items():
        found.append(Violation("6", None, f"a relay stopped ({len(steps)} times, first at {steps[0]}): {text}"))
    for step in outcome.unsettled:
        found.append(Violation("6", None, f"the relays did not settle at the sync point of step {step}"))
    for stray in outcome.strays:
        if _ident(stray["_id"]) not in quarantined and not any(
            _ident(outcome.keys[i]) in quarantined for i, k in enumerate(outcome.history.keys)
            if (stray.get("pk"), stray.get("sk")) == k
        ):
            found.append(Violation("6", None, f"document _id={stray['_id']!r} off the key convention is not quarantined"))
    for index, key_id in enumerate(outcome.keys):
        found += _check_key(outcome, index, key_id, quarantined)
    if outcome.newest_independent is not None and outcome.newest_independent in outcome.ttl_created:
        found.append(Violation("7", None, f"a TTL expiry (record at {outcome.newest_independent.isoformat()}) counted as "
                                          f"the newest independent DynamoDB write"))
    return found


def _untyped_equal(document: dict[str, Any], item: dict[str, Any] | None) -> bool:
    if item is None:
        return False
    plain = item_to_document(item, KEY_ATTRS)
    plain.pop("_ddb", None)
    return plain == {k: v for k, v in document.items() if k != "_ddb"}


# A replace "keeping _ddb" keeps the hints of the version it read, which need not name the new
# attributes; an insert carries its own.
_TYPED_MONGO_WRITES = ("mongo_insert",)


def _schema_typed(item: Any) -> Any:
    if not isinstance(item, dict):
        return item
    typed = model_item(item_to_document(item, KEY_ATTRS))
    return item if typed is POISON else typed


def _typed_right(item: Any) -> set[str]:
    """The attributes an item holds with the schema's type (an item DynamoDB was given with a type
    already lost teaches nothing)."""
    if not isinstance(item, dict):
        return set()
    return {a for a, v in item.items() if isinstance(v, dict) and next(iter(v), None) == SCHEMA.get(a)}


def _unknowable_types(outcome: Outcome, index: int, meant: Any, ddb: Any) -> list[str] | None:
    """The attributes whose DynamoDB type the sync could not have known, when those are all that
    differ; None when some lost type was knowable.

    An attribute's type is knowable when a write that carried it typed (a seed of this key, a
    DynamoDB write or a hinted MongoDB insert of any key) was followed by a sync point before the
    key's last MongoDB write of the attribute: both relays had then read it.
    """
    if not isinstance(meant, dict) or not isinstance(ddb, dict) or meant.keys() != ddb.keys():
        return None
    differing = [a for a in meant if meant[a] != ddb[a]]
    events = outcome.events.get(index, [])
    sightings: dict[str, list[int]] = {a: [0] for a in _typed_right(outcome.seeded.get(index))}
    for key_events in outcome.events.values():
        for event in key_events:
            op = outcome.history.steps[event.step - 1].get("op") if 0 < event.step <= len(outcome.history.steps) else None
            if isinstance(event.content, dict) and (event.side == "ddb" or op in _TYPED_MONGO_WRITES):
                for a in _typed_right(event.content):
                    sightings.setdefault(a, []).append(event.step)
    for a in differing:
        written = [e.step for e in events if e.side == "mongo" and isinstance(e.content, dict) and a in e.content]
        if not written:
            return None
        if any(seen < point < written[-1] for seen in sightings.get(a, ()) for point in outcome.sync_points):
            return None
    return differing


def _check_key(outcome: Outcome, index: int, key_id: Any, quarantined: set[bytes]) -> list[Violation]:
    name = "%s/%s" % outcome.history.keys[index]
    ddb = outcome.final_ddb[index]
    doc = outcome.final_doc[index]
    mapped, meant = project_item(doc), model_item(doc)
    both = f"DynamoDB {show_item(ddb)}; MongoDB {_show(mapped)} (by the schema: {_show(meant)})"
    events = outcome.events.get(index, [])
    found: list[Violation] = []
    if meant is POISON or mapped is POISON:
        if _ident(key_id) not in quarantined:
            found.append(Violation("6", name, f"MongoDB holds a document DynamoDB cannot hold and it is not quarantined; {both}"))
        return found
    if any((stray.get("pk"), stray.get("sk")) == outcome.history.keys[index] for stray in outcome.strays):
        # A document off the key convention still holds this key's fields: until the application
        # fixes it, the key's DynamoDB changes wait in the quarantine (rule 6 checks they are there).
        if ddb is not None and doc is None and _ident(key_id) not in quarantined:
            found.append(Violation("6", name, f"a stray document holds the key, DynamoDB's item has no document and "
                                              f"nothing is quarantined; {both}"))
        return found
    if doc is not None and "_ddb" not in doc and mapped != ddb and _untyped_equal(doc, ddb):
        # Written without _ddb: MongoDB holds the plain values, DynamoDB the types sync remembered.
        mapped = ddb
    final = ddb
    if mapped != ddb:
        found.append(Violation("1", name, f"the stores differ: {both}"))
    elif meant != ddb:
        unknowable = _unknowable_types(outcome, index, meant, ddb)
        if unknowable is None:
            found.append(Violation("1t", name, f"types lost: {both}"))
        else:
            # Nothing the sync could read had ever shown these attributes' types (only MongoDB
            # writes without hints): undecidable, so the plain types are what DESIGN §6 allows.
            # The rest of the rules compare contents as the schema types them.
            final = meant
            events = [dataclasses.replace(e, content=_schema_typed(e.content)) for e in events]
    if not events:
        if final != outcome.seeded.get(index):
            found.append(Violation("2", name, f"never written, but not its seed {show_item(outcome.seeded.get(index))}: {both}"))
        return found
    start = _epoch_start(events, outcome.sync_points)
    epoch = [e for e in events if e.step > start]
    contents = [e.content for e in events] + [outcome.seeded.get(index)]
    if final not in contents:
        found.append(Violation("2", name, f"the final state is no write's content: {both}"))
        return found
    if final not in [e.content for e in epoch]:
        found.append(Violation("3", name, f"the final state is from before the sync point of step {start}, "
                                          f"superseded by step {epoch[0].step}: {both}"))
        return found
    writes = [e for e in epoch if e.side != "ttl"]
    sides = {e.side for e in writes}
    ttl = [e for e in epoch if e.side == "ttl"]
    if POISON in [e.content for e in epoch] or (ttl and "mongo" in sides):
        return found  # the model does not decide these epochs (see history.generate)
    new_conflicts = _conflicts_since(outcome, index, start)
    if epoch[-1].side == "ttl":
        if final is not None or doc is not None:
            found.append(Violation("7", name, f"expired by TTL at step {epoch[-1].step}, still present: {both}"))
        if new_conflicts:
            found.append(Violation("7", name, f"expired by TTL at step {epoch[-1].step}, {new_conflicts} conflict record(s)"))
        return found
    last = writes[-1]
    if len(sides) == 1:
        if final != last.content:
            found.append(Violation("5", name, f"written on {last.side} only since step {start}; its last write "
                                              f"(step {last.step}) {_show(last.content)} was lost: {both}"))
        elif new_conflicts:
            found.append(Violation("5", name, f"written on {last.side} only since step {start}, yet "
                                              f"{new_conflicts} conflict record(s)"))
        return found
    if final != last.content and not new_conflicts:
        found.append(Violation("4", name, f"the last write (step {last.step}, {last.side}) {_show(last.content)} "
                                          f"was lost with no conflict record: {both}"))
    window = [s for s in outcome.relay_steps if writes[0].step < s < last.step]
    if not window:
        expected = _policy_outcome(outcome.history.policy, writes)
        if expected is not _UNDECIDED and final != expected.content:
            found.append(Violation("8", name, f"{outcome.history.policy}: both sides wrote in one window "
                                              f"(steps {writes[0].step}..{last.step}); expected step {expected.step} "
                                              f"{_show(expected.content)}: {both}"))
    return found


_UNDECIDED = object()


def _policy_outcome(policy: str, writes: list[Event]) -> Any:
    last_ddb = [e for e in writes if e.side == "ddb"][-1]
    last_mongo = [e for e in writes if e.side == "mongo"][-1]
    if policy == "dynamodb_wins":
        return last_ddb
    if policy == "mongodb_wins":
        return last_mongo
    if abs(last_ddb.at - last_mongo.at) < LATEST_TOLERANCE:
        return _UNDECIDED
    return max(last_ddb, last_mongo, key=lambda e: e.at)


# ---- failures and shrinking --------------------------------------------------------------------


class ModelFailure(AssertionError):
    pass


def report(history: History, violations: list[Violation], outcome: Outcome, minimal: History | None,
           minimal_log: list[str] | None) -> str:
    lines = [f"seed {history.seed} ({history.name or 'generated'}, policy {history.policy}): "
             f"{len(violations)} violation(s) of DESIGN §6"]
    lines += [f"  {v}" for v in violations[:12]]
    if outcome.conflicts:
        lines.append("conflict records:")
        lines += [f"  key {c.get('key')!r}: {c.get('resolution')} wins ({c.get('policy')}): {c.get('detail')}"
                  for c in outcome.conflicts[:12]]
    if outcome.errors:
        lines.append("relay failures (first of each kind):")
        seen: set[str] = set()
        for error in outcome.errors:
            kind = error.splitlines()[0].partition(": ")[2]
            if kind not in seen and len(seen) < 3:
                seen.add(kind)
                lines.append("  " + error.replace("\n", "\n  "))
    if minimal is not None:
        lines.append(f"minimal history ({len(minimal.steps)} of {len(history.steps)} steps) still breaking rule "
                     f"{violations[0].rule}:")
        lines.append(show(minimal))
        if minimal_log:
            lines.append("its run and what it broke:")
            lines += minimal_log
    else:
        lines.append(show(history))
        lines.append("its run:")
        lines += outcome.log
    return "\n".join(lines)


def shrink(history: History, fails: Callable[[History], list[str] | None], max_runs: int = 25,
           max_seconds: float = SHRINK_SECONDS) -> tuple[History, list[str] | None]:
    """Delta debugging (ddmin) over the steps, with a bounded number of re-runs; ``fails`` returns
    the run's log when the history still breaks the rule, else None."""
    steps = list(history.steps)
    log = None
    runs, deadline = 0, time.monotonic() + max_seconds
    chunks = 2
    while len(steps) >= 1 and runs < max_runs and time.monotonic() < deadline:
        size = max(1, len(steps) // chunks)
        reduced = False
        for start in range(0, len(steps), size):
            candidate = steps[:start] + steps[start + size:]
            runs += 1
            result = fails(history.with_steps(candidate))
            if result is not None:
                steps, log, reduced = candidate, result, True
                chunks = max(chunks - 1, 2)
                break
            if runs >= max_runs or time.monotonic() > deadline:
                break
        if not reduced:
            if size == 1:
                break
            chunks = min(len(steps), chunks * 2)
    return history.with_steps(steps), log


def verify(env: Env, history: History, shrinking: bool = True) -> Outcome:
    """Run and check; raise ModelFailure with the seed, the violations and a minimal history."""
    outcome = run(env, history)
    violations = check(outcome)
    if not violations:
        return outcome
    minimal = minimal_log = None
    if shrinking:
        rule = violations[0].rule

        def fails(candidate: History) -> list[str] | None:
            again = run(env, candidate)
            broken = check(again)
            if not any(v.rule == rule for v in broken):
                return None
            return again.log + [f"  {v}" for v in broken[:8]]

        minimal, minimal_log = shrink(history, fails)
    raise ModelFailure(report(history, violations, outcome, minimal, minimal_log))
