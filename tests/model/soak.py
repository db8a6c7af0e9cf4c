"""The sync checker's soak: ``python -m tests.model.soak --seeds 200 [--start N] [--policy P]``.

Starts its own moto server and MongoDB wire server (or uses $MONGO_URI), runs one generated history
per seed through the real relays, prints one line per seed and ends with "N passed, M failed" and
the failing seeds. ``--policy all`` cycles through the three conflict policies; ``--shrink`` also
prints a minimal history for each failure (slower); ``--report FILE`` writes every failure's full
report there.
"""

from __future__ import annotations

import argparse
import sys
import time

from tests.model.history import generate
from tests.model.reference import report, ModelFailure, check, verify
from tests.model.runner import run, servers

POLICIES = ("dynamodb_wins", "mongodb_wins", "latest_wins")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.model.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200, help="how many seeds (default 200)")
    parser.add_argument("--start", type=int, default=1, help="first seed (default 1)")
    parser.add_argument("--policy", default="all", choices=(*POLICIES, "all"))
    parser.add_argument("--shrink", action="store_true", help="shrink each failure to a minimal history")
    parser.add_argument("--report", help="append each failure's full report to this file")
    args = parser.parse_args(argv)
    failed: list[tuple[int, str, list[str]]] = []
    started = time.monotonic()
    with servers() as env:
        for number, seed in enumerate(range(args.start, args.start + args.seeds)):
            policy = POLICIES[seed % 3] if args.policy == "all" else args.policy
            history = generate(seed, policy)
            began = time.monotonic()
            text = None
            if args.shrink:
                try:
                    verify(env, history)
                    rules: list[str] = []
                except ModelFailure as failure:
                    text = str(failure)
                    rules = sorted({line.split()[1] for line in text.splitlines() if line.startswith("  rule ")})
            else:
                outcome = run(env, history)
                violations = check(outcome)
                rules = sorted({v.rule for v in violations})
                if violations:
                    text = report(history, violations, outcome, None, None)
            seconds = time.monotonic() - began
            verdict = "ok" if not rules else "FAIL rules " + ",".join(rules)
            print(f"seed {seed:5d} {policy:13s} {len(history.steps):3d} steps {seconds:5.1f}s  {verdict}", flush=True)
            if rules:
                failed.append((seed, policy, rules))
                if args.report and text:
                    with open(args.report, "a") as out:
                        out.write(text + "\n\n")
    total = args.seeds
    print(f"{total - len(failed)} passed, {len(failed)} failed in {time.monotonic() - started:.0f}s")
    if failed:
        print("failing seeds: " + " ".join(f"{s}({p}:{','.join(r)})" for s, p, r in failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
