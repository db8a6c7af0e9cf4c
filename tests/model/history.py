"""Seeded histories for the sync checker: what applications, DynamoDB and operators do to one table.

A history is a plain list of steps (dicts), a pure function of its seed, so a failure is replayed
from the seed alone and shrunk by dropping steps. Every step stands on its own: the runner turns a
step that finds nothing to act on (an update of a document that is not there yet) into a no-op
instead of failing, so any subsequence of a history is still a history.

Each attribute name has one DynamoDB type for the whole table (``SCHEMA``). That is what the
checker relies on to know which types a MongoDB write must end with in DynamoDB, whatever the
application did to ``_ddb``: DESIGN §6 asks the sync to keep or learn exactly that.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

# Attribute name -> DynamoDB type. Sets and the 37-digit number are the types a MongoDB rewrite
# without ``_ddb`` loses.
SCHEMA = {
    "status": "S",
    "count": "N",
    "big": "N",
    "tags": "SS",
    "nums": "NS",
    "bins": "BS",
    "flag": "BOOL",
    "nothing": "NULL",
    "blob": "B",
    "lines": "L",
    "meta": "M",
}
STATUSES = ("active", "suspended", "closed", "trial")
POISONS = ("nan", "regex", "missing_key", "bad_id", "too_big")
BAD_IDS = ("objectid", "string", "swapped")
KILL_TARGETS = {
    "forward": (
        "collection.bulk_write",
        "collection.replace_one",
        "collection.delete_one",
        "keys.bulk_write",
        "ledger.bulk_write",
        "checkpoints.save",
        "dynamodb.put_item",
        "dynamodb.delete_item",
    ),
    "backward": (
        "dynamodb.batch_write_item",
        "dynamodb.delete_item",
        "dynamodb.put_item",
        "collection.replace_one",
        "collection.delete_one",
        "keys.bulk_write",
        "ledger.bulk_write",
        "checkpoints.save",
    ),
}
# Where the other relay may run a step in the middle of this one's: between its reads (the batch's
# documents, key states, ledger entries) and its writes.
INTERLEAVE_TARGETS = {
    "forward": ("collection.find", "keys.find", "ledger.find", "ledger.bulk_write", "collection.bulk_write",
                "keys.bulk_write"),
    "backward": ("collection.find", "keys.find", "ledger.find", "ledger.bulk_write", "dynamodb.batch_write_item",
                 "keys.bulk_write"),
}
# Attributes the application changes one at a time (SET / $set); key fields never.
SETTABLE = tuple(name for name in SCHEMA if name not in ("nothing",))


@dataclass
class History:
    seed: int
    keys: list[tuple[str, int]]
    seeded: dict[int, dict[str, Any]]  # key index -> DynamoDB item present before the history
    steps: list[dict[str, Any]]
    batch_size: int = 100
    policy: str = "dynamodb_wins"
    name: str = ""
    notes: dict[str, Any] = field(default_factory=dict)

    def with_steps(self, steps: list[dict[str, Any]]) -> "History":
        return History(self.seed, self.keys, self.seeded, steps, self.batch_size, self.policy, self.name, self.notes)


def key_item(keys: list[tuple[str, int]], index: int) -> dict[str, Any]:
    pk, sk = keys[index]
    return {"pk": {"S": pk}, "sk": {"N": str(sk)}}


def value(rng: random.Random, name: str) -> dict[str, Any]:
    """A DynamoDB value of attribute ``name``'s type."""
    kind = SCHEMA[name]
    if name == "status":
        return {"S": rng.choice(STATUSES)}
    if name == "big":
        # 37 significant digits: more than Decimal128 holds, so MongoDB keeps it as a string with a hint.
        return {"N": str(rng.randint(10**36, 10**37 - 1))}
    if kind == "N":
        return {"N": str(rng.randint(-1000, 10**6))}
    if kind == "SS":
        return {"SS": sorted({rng.choice("abcdefgh") * rng.randint(1, 3) for _ in range(rng.randint(1, 3))})}
    if kind == "NS":
        return {"NS": sorted({str(rng.randint(0, 99)) for _ in range(rng.randint(1, 3))})}
    if kind == "BS":
        return {"BS": sorted({bytes([rng.randint(0, 255)]) * rng.randint(1, 3) for _ in range(rng.randint(1, 3))})}
    if kind == "BOOL":
        return {"BOOL": rng.random() < 0.5}
    if kind == "NULL":
        return {"NULL": True}
    if kind == "B":
        return {"B": bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 4)))}
    if kind == "L":
        return {"L": [rng.choice([{"S": "x"}, {"N": str(rng.randint(0, 9))}, {"BOOL": True},
                                  {"M": {"q": {"N": str(rng.randint(1, 5))}}}]) for _ in range(rng.randint(0, 3))]}
    return {"M": {"a": {"S": rng.choice(["u", "v", "w"])}, "n": {"N": str(rng.randint(0, 50))}}}


def item(rng: random.Random, keys: list[tuple[str, int]], index: int) -> dict[str, Any]:
    attrs = ["status"] + rng.sample([n for n in SCHEMA if n != "status"], rng.randint(1, 5))
    return {**key_item(keys, index), **{name: value(rng, name) for name in attrs}}


# (kind, weight). Relay steps are frequent enough that most epochs see some sync before the next
# sync point; sync points are what the oracle's supersede rules (3-5) hang on.
_WEIGHTS = [
    ("ddb_put", 7), ("ddb_set", 6), ("ddb_remove", 2), ("ddb_delete", 3), ("ttl", 2),
    ("mongo_insert", 3), ("mongo_set", 6), ("mongo_unset", 2), ("mongo_replace_ddb", 3),
    ("mongo_replace_plain", 3), ("mongo_delete", 3), ("mongo_update_many", 2), ("change_back", 4),
    ("poison", 2), ("fwd_step", 9), ("bwd_step", 9), ("kill", 3), ("fwd_rollback", 1),
    ("lambda_redeliver", 2), ("bwd_rollback", 1), ("sync", 5), ("pause", 1),
]


def generate(seed: int, policy: str = "dynamodb_wins") -> History:
    rng = random.Random(seed)
    weave = random.Random(seed * 7919 + 1)
    count = rng.randint(3, 6)
    keys = [(f"p{i % 2}", i) for i in range(count)]
    seeded = {i: item(rng, keys, i) for i in range(count) if rng.random() < 0.5}
    length = rng.randint(15, 60)
    kinds, weights = zip(*_WEIGHTS)
    # Statuses each key held, for "change back".
    statuses: dict[int, list[str]] = {i: [it["status"]["S"]] for i, it in seeded.items()}
    poisoned: set[int] = set()  # keys whose MongoDB document is poison until a good rewrite
    # Keys written in MongoDB since the last sync point, and keys a TTL expired since then: the two
    # never share an epoch, where the oracle could not tell which one the key should end as.
    mongo_written: set[int] = set()
    expired: set[int] = set()
    steps: list[dict[str, Any]] = []
    while len(steps) < length:
        kind = rng.choices(kinds, weights)[0]
        k = rng.randrange(count)
        step: dict[str, Any] = {"op": kind}
        ddb_side = kind.startswith("ddb_") or kind == "ttl"
        mongo_side = kind.startswith("mongo_") or kind in ("change_back", "poison")
        if ddb_side and k in poisoned:
            continue
        if kind == "ttl" and k in mongo_written:
            continue
        if mongo_side and kind != "mongo_update_many" and k in expired:
            continue
        if k in poisoned and mongo_side and kind not in ("mongo_replace_plain", "mongo_replace_ddb", "mongo_delete"):
            continue
        if kind in ("ddb_put", "mongo_insert", "mongo_replace_ddb", "mongo_replace_plain"):
            step.update(key=k, item=item(rng, keys, k))
            statuses.setdefault(k, []).append(step["item"]["status"]["S"])
            if kind.startswith("mongo_replace") and k in poisoned:
                step["upsert"] = True  # the application's fix rewrites the whole document
                poisoned.discard(k)
        elif kind in ("ddb_set", "mongo_set"):
            name = rng.choice(SETTABLE)
            step.update(key=k, attr=name, value=value(rng, name))
            if name == "status":
                statuses.setdefault(k, []).append(step["value"]["S"])
        elif kind in ("ddb_remove", "mongo_unset"):
            step.update(key=k, attr=rng.choice([n for n in SCHEMA if n != "status"]))
        elif kind in ("ddb_delete", "mongo_delete", "ttl"):
            step.update(key=k)
            poisoned.discard(k)
        elif kind == "mongo_update_many":
            chosen = sorted(rng.sample(range(count), rng.randint(2, count)))
            chosen = [c for c in chosen if c not in poisoned and c not in expired]
            if len(chosen) < 2:
                continue
            name = rng.choice(("status", "count", "flag", "meta"))
            step.update(keys=chosen, attr=name, value=value(rng, name))
            mongo_written.update(chosen)
        elif kind == "change_back":
            held = statuses.get(k) or []
            if len(held) < 2:
                continue
            # A value the key held before its latest one; on MongoDB, where the echo rule was fooled.
            step.update(key=k, attr="status", value={"S": rng.choice(held[:-1])})
            statuses[k].append(step["value"]["S"])
        elif kind == "poison":
            step.update(key=k, kind=rng.choice(POISONS), item=item(rng, keys, k))
            if step["kind"] == "bad_id":
                step["bad_id"] = rng.choice(BAD_IDS)
            else:
                poisoned.add(k)
        elif kind == "kill":
            relay = rng.choice(("forward", "backward"))
            step.update(relay=relay, target=rng.choice(KILL_TARGETS[relay]), nth=rng.randint(1, 3),
                        when=rng.choice(("before", "after")))
        elif kind == "fwd_rollback":
            step.update(to=rng.choice(("earlier", "trim_horizon")), fraction=rng.random())
        elif kind in ("lambda_redeliver", "bwd_rollback"):
            step.update(fraction=rng.random())
        elif kind == "pause":
            step.update(seconds=round(rng.uniform(0.12, 0.3), 2))
        if mongo_side and "key" in step:
            mongo_written.add(k)
        if kind == "ttl":
            expired.add(k)
        if kind == "sync":
            mongo_written.clear()
            expired.clear()
        if kind in ("fwd_step", "bwd_step") and weave.random() < 0.35:
            # Drawn apart from the main sequence, so that a seed's writes stay what they were.
            relay = "forward" if kind == "fwd_step" else "backward"
            step = {"op": "interleave", "relay": relay, "target": weave.choice(INTERLEAVE_TARGETS[relay]),
                    "nth": weave.randint(1, 2)}
        steps.append(step)
    return History(seed, keys, seeded, steps, batch_size=rng.choice((3, 10, 100)), policy=policy)


def _short(attr: dict[str, Any]) -> str:
    ((kind, inner),) = attr.items()
    if kind in ("SS", "NS"):
        return f"{kind}{{{','.join(inner)}}}"
    if kind == "BS":
        return f"BS{{{','.join(b.hex() for b in inner)}}}"
    if kind == "B":
        return f"B:{inner.hex()}"
    if kind == "N" and len(inner) > 12:
        return f"N:{inner[:6]}…({len(inner)} digits)"
    if kind == "S" and len(inner) > 40:
        return f"S:{inner[:12]}…({len(inner)} characters)"
    if kind == "M":
        return "{" + ", ".join(f"{n}: {_short(v)}" for n, v in inner.items()) + "}"
    if kind == "L":
        return "[" + ", ".join(_short(v) for v in inner) + "]"
    return f"{kind}:{inner}"


def show_item(it: dict[str, Any] | None) -> str:
    if it is None:
        return "(absent)"
    return "{" + ", ".join(f"{n}: {_short(v)}" for n, v in it.items() if n not in ("pk", "sk")) + "}"


def describe(step: dict[str, Any], keys: list[tuple[str, int]]) -> str:
    """One readable line for a step."""
    op = step["op"]
    key = f"{keys[step['key']][0]}/{keys[step['key']][1]}" if "key" in step else ""
    if op == "ddb_put":
        return f"DynamoDB put_item {key} {show_item(step['item'])}"
    if op == "ddb_set":
        return f"DynamoDB update_item {key} SET {step['attr']} = {_short(step['value'])}"
    if op == "ddb_remove":
        return f"DynamoDB update_item {key} REMOVE {step['attr']}"
    if op == "ddb_delete":
        return f"DynamoDB delete_item {key}"
    if op == "ttl":
        return f"TTL expiry of {key} (DynamoDB service delete)"
    if op == "mongo_insert":
        return f"MongoDB insert_one {key} {show_item(step['item'])}"
    if op in ("mongo_set", "change_back"):
        back = " (change back to an earlier value)" if op == "change_back" else ""
        return f"MongoDB update_one {key} $set {step['attr']}: {_short(step['value'])}{back}"
    if op == "mongo_unset":
        return f"MongoDB update_one {key} $unset {step['attr']}"
    if op == "mongo_replace_ddb":
        return f"MongoDB replace_one {key} keeping _ddb {show_item(step['item'])}" + (" upsert" if step.get("upsert") else "")
    if op == "mongo_replace_plain":
        return f"MongoDB replace_one {key} without _ddb {show_item(step['item'])}" + (" upsert" if step.get("upsert") else "")
    if op == "mongo_delete":
        return f"MongoDB delete_one {key}"
    if op == "mongo_update_many":
        names = ", ".join(f"{keys[k][0]}/{keys[k][1]}" for k in step["keys"])
        return f"MongoDB update_many [{names}] $set {step['attr']}: {_short(step['value'])}"
    if op == "poison":
        extra = f" (_id as {step['bad_id']})" if step["kind"] == "bad_id" else ""
        return f"MongoDB poison document {key}: {step['kind']}{extra}"
    if op == "kill":
        return f"arm a kill of the {step['relay']} relay at call #{step['nth']} of {step['target']} ({step['when']} the call)"
    if op == "interleave":
        other = "backward" if step["relay"] == "forward" else "forward"
        return f"{step['relay']} step, with a {other} step run before its call #{step['nth']} of {step['target']}"
    if op == "fwd_rollback":
        return f"forward checkpoint rolled back ({step['to']}, {step['fraction']:.2f}) and relay restarted"
    if op == "lambda_redeliver":
        return f"Lambda-style redelivery of an applied forward batch ({step['fraction']:.2f})"
    if op == "bwd_rollback":
        return f"backward resume token rolled back ({step['fraction']:.2f}) and relay restarted"
    if op == "fwd_step":
        return "forward relay step"
    if op == "bwd_step":
        return "backward relay step"
    if op == "sync":
        return "sync point (both relays idle twice)"
    if op == "pause":
        return f"pause {step['seconds']} s"
    if op == "align_second":
        return f"wait until {step['at']:.2f} s past a wall-clock second"
    return repr(step)


def show(history: History) -> str:
    lines = [f"history seed={history.seed} policy={history.policy} batch_size={history.batch_size} "
             f"keys={['%s/%s' % k for k in history.keys]}"]
    for index, it in sorted(history.seeded.items()):
        lines.append(f"   seeded {history.keys[index][0]}/{history.keys[index][1]} {show_item(it)}")
    lines += [f"{n:3d}. {describe(step, history.keys)}" for n, step in enumerate(history.steps, 1)]
    return "\n".join(lines)
