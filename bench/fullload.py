"""Full-load benchmark: conversion and import against baselines measured in the same run.

    .venv/bin/python -m bench.fullload               # quick: 8 MB per format, a few minutes
    .venv/bin/python -m bench.fullload --size 1GB    # the 1 GB run (each export at least 1 GB uncompressed)

It generates an export of the sandbox's sample items (dynamo2mongo.sandbox.sample.item) in both
formats DynamoDB writes, ION (``$ion_1_0 {Item:{...}}`` lines) and DYNAMODB_JSON (``{"Item":...}``
lines, binary as base64), then measures, each figure beside its baseline:

- conversion, in CPU seconds of one process (items/s and MB/s per core): the seed's approach
  (amazon-ion's ``simpleion.loads`` per line, down-converted to type-less JSON) against
  ``convert_lines`` for ION and for DYNAMODB_JSON; best of ``--rounds``, interleaved;
- import into one MongoDB server (mongo-java-server started here, or ``$MONGO_URI``), wall clock:
  ``insert_many`` of prebuilt documents against ``import_lines`` of the converted lines;
- peak memory (RSS high-water mark, ``getrusage`` in a child process per run) of one convert task
  (gzip in, gzip out) and one import task, at 1x and 10x input.

Generated files are kept in ``--workdir`` (default ``.sandbox/bench``) and reused.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import io
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ("ION", "DYNAMODB_JSON")
SUFFIX = {"ION": "ion", "DYNAMODB_JSON": "json"}
TARGETS = {"ION": 5.0, "DYNAMODB_JSON": 8.0}
IMPORT_TARGET, MEMORY_GROWTH_LIMIT = 0.9, 1.2


# ---- the export -----------------------------------------------------------------------------------


def export_line(item: dict[str, Any], export_format: str, first: bool) -> str:
    """One line as DynamoDB's export writes it (the Ion version marker opens the file)."""
    if export_format == "ION":
        from dynamo2mongo.sandbox.ion_writer import dump_line

        return ("$ion_1_0 " if first else "") + dump_line(item) + "\n"
    from dynamo2mongo.fullload.export.ddbjson import item_to_json

    return json.dumps({"Item": item_to_json(item)}, separators=(",", ":"), ensure_ascii=False) + "\n"


def ensure_export(workdir: Path, export_format: str, target_bytes: int) -> tuple[Path, int]:
    """An uncompressed export of at least ``target_bytes``; returns (path, items). Reused when there."""
    from dynamo2mongo.sandbox import sample

    path = workdir / f"export-{target_bytes}.{SUFFIX[export_format]}"
    count_path = path.with_suffix(path.suffix + ".items")
    if path.exists() and count_path.exists():
        return path, int(count_path.read_text())
    workdir.mkdir(parents=True, exist_ok=True)
    written = items = 0
    partial = path.with_suffix(".partial")
    with open(partial, "w", encoding="utf-8") as out:
        while written < target_bytes:
            line = export_line(sample.item(items), export_format, items == 0)
            out.write(line)
            written += len(line.encode())
            items += 1
    partial.rename(path)
    count_path.write_text(str(items))
    return path, items


def gzip_export(workdir: Path, export_format: str, items: int) -> Path:
    """A gzip'd data file of ``items`` items, as DynamoDB writes them. Reused when there."""
    from dynamo2mongo.sandbox import sample

    path = workdir / f"data-{items}.{SUFFIX[export_format]}.gz"
    if not path.exists():
        workdir.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        with gzip.open(partial, "wt", encoding="utf-8", compresslevel=6) as out:
            for index in range(items):
                out.write(export_line(sample.item(index), export_format, index == 0))
        partial.rename(path)
    return path


# ---- conversion -----------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """The seed's down-conversion of an amazon-ion value to a type-less JSON value."""
    from amazon.ion.core import IonType

    kind = value.ion_type
    if kind is IonType.STRUCT:
        return {name: _plain(inner) for name, inner in value.items()}
    if kind is IonType.LIST:
        return [_plain(inner) for inner in value]
    if kind is IonType.DECIMAL:
        return float(value)
    if kind is IonType.INT:
        return int(value)
    if kind is IonType.BLOB:
        return base64.b64encode(value).decode()
    if kind is IonType.BOOL:
        return bool(value)
    if kind is IonType.NULL:
        return None
    return str(value)


def baseline_convert(lines: Iterator[bytes], sink: Callable[[str], Any]) -> int:
    """The seed: simpleion.loads per line, down-converted to type-less JSON lines."""
    from amazon.ion import simpleion

    items = 0
    for line in lines:
        if line.strip():
            sink(json.dumps(_plain(simpleion.loads(line, single_value=True)["Item"])) + "\n")
            items += 1
    return items


def project_convert(export_format: str, compiled: bool = True) -> Callable[[Iterator[bytes], Callable[[str], Any]], int]:
    """What the convert task runs: the compiled line conversion where installed (``compiled``), the
    Python path for the lines it leaves."""
    from dynamo2mongo.fullload.convert import ConvertResult, convert_lines
    from dynamo2mongo.fullload.export.manifest import reader_for
    from dynamo2mongo.mapping.native import line_converter
    from dynamo2mongo.sandbox.sample import KEY_ATTRS

    fast_line = line_converter(export_format, KEY_ATTRS) if compiled else None

    def run(lines: Iterator[bytes], sink: Callable[[str], Any]) -> int:
        result = ConvertResult("bench", "bench")
        convert_lines(lines, reader_for(export_format), KEY_ATTRS, sink, _refuse, result, fast_line=fast_line)
        return result.items

    return run


def _refuse(bad: Any) -> None:
    raise SystemExit(f"the benchmark's own export has a bad record: line {bad.line}: {bad.reason}")


@dataclass
class Timing:
    items: int
    cpu: float
    wall: float


def time_convert(convert: Callable, path: Path, limit: int | None = None) -> Timing:
    """One pass over the export file, the output written to a file (as uncompressed text)."""
    out_path = path.with_suffix(".out")
    with open(path, "rb", buffering=1 << 20) as source, open(out_path, "w", encoding="utf-8", buffering=1 << 20) as out:
        lines = source if limit is None else (line for _, line in zip(range(limit), source))
        cpu, wall = time.process_time(), time.perf_counter()
        items = convert(lines, out.write)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    out_path.unlink()
    return Timing(items, cpu, wall)


def component_costs(export_format: str, path: Path, count: int = 3000) -> dict[str, float]:
    """Microseconds of CPU per item for the reader, the mapping, forward sync's baseline mark (when
    the conversion adds one) and the Extended JSON writer."""
    from dynamo2mongo.fullload import convert
    from dynamo2mongo.mapping import extjson
    from dynamo2mongo.fullload.export.manifest import reader_for
    from dynamo2mongo.sandbox.sample import KEY_ATTRS
    from dynamo2mongo.mapping import item_to_document

    with open(path, "rb") as source:
        lines = [line for _, line in zip(range(count), source)]
    read = reader_for(export_format)
    costs = {}
    started = time.process_time()
    items = [read(line) for line in lines]
    costs["reader"] = time.process_time() - started
    started = time.process_time()
    documents = [item_to_document(item, KEY_ATTRS) for item in items]
    costs["mapping"] = time.process_time() - started
    mark = getattr(convert, "baseline_mark", None)
    if mark is not None:
        started = time.process_time()
        for item in items:
            mark(item)
        costs["baseline mark"] = time.process_time() - started
    started = time.process_time()
    for document in documents:
        extjson.dumps(document)
    costs["writer"] = time.process_time() - started
    return {name: seconds / len(lines) * 1e6 for name, seconds in costs.items()}


# ---- import ---------------------------------------------------------------------------------------


def extjson_lines(items: int) -> list[bytes]:
    from dynamo2mongo.mapping import extjson
    from dynamo2mongo.sandbox.sample import KEY_ATTRS, item
    from dynamo2mongo.mapping import item_to_document

    return [(extjson.dumps(item_to_document(item(i), KEY_ATTRS)) + "\n").encode() for i in range(items)]


def time_imports(uri: str, lines: list[bytes], rounds: int, batch_size: int) -> dict[str, list[float]]:
    """items/s (wall) of raw insert_many and of import_lines, interleaved, into fresh collections."""
    from bson import json_util
    from pymongo import MongoClient

    from dynamo2mongo.fullload.load import import_lines

    documents = [json_util.loads(line) for line in lines]
    client = MongoClient(uri)
    database = client["d2m_bench"]

    def raw(collection: Any) -> None:
        for start in range(0, len(documents), batch_size):
            collection.insert_many(documents[start : start + batch_size], ordered=False)

    def project(collection: Any) -> None:
        import_lines(iter(lines), collection, "bench", batch_size=batch_size, guard_newer=False)

    def guarded_rerun(collection: Any) -> None:
        import_lines(iter(lines), collection, "bench", batch_size=batch_size, guard_newer=True)

    def measure(name: str, write: Callable, fresh: bool = True) -> float:
        collection = database[f"bench_{name}"]
        if fresh:
            collection.drop()
        started = time.perf_counter()
        write(collection)
        rate = len(lines) / (time.perf_counter() - started)
        if collection.estimated_document_count() != len(lines):
            raise SystemExit(f"{name}: {collection.estimated_document_count()} documents, expected {len(lines)}")
        return rate

    try:
        # mongo-java-server runs on the JVM: the first batches are slow until it is compiled.
        for _ in range(2):
            measure("warmup", raw)
        rates: dict[str, list[float]] = {"raw": [], "import": [], "rerun": []}
        for _ in range(rounds):
            rates["raw"].append(measure("raw", raw))
            rates["import"].append(measure("import", project))
            rates["rerun"].append(measure("import", guarded_rerun, fresh=False))
        for name in ("warmup", "raw", "import"):
            database[f"bench_{name}"].drop()
        return rates
    finally:
        client.close()


# ---- memory (child processes) ---------------------------------------------------------------------


def child_convert(export_format: str, source: str) -> dict[str, Any]:
    """A convert task without S3: gzip'd export in, gzip'd Extended JSON out, streamed."""
    convert = project_convert(export_format)
    started = time.perf_counter()
    with gzip.open(source, "rb") as raw, io.BufferedReader(raw, 1 << 20) as lines:
        with gzip.open(os.devnull, "wt", encoding="utf-8", compresslevel=1) as out:
            items = convert(iter(lines), out.write)
    return {"items": items, "seconds": time.perf_counter() - started}


def child_import(source: str, uri: str, collection_name: str, batch_size: int) -> dict[str, Any]:
    from pymongo import MongoClient

    from dynamo2mongo.fullload.load import import_lines

    client = MongoClient(uri)
    collection = client["d2m_bench"][collection_name]
    collection.drop()
    started = time.perf_counter()
    with gzip.open(source, "rb") as raw, io.BufferedReader(raw, 1 << 20) as lines:
        result = import_lines(lines, collection, source, batch_size=batch_size, guard_newer=False)
    seconds = time.perf_counter() - started
    collection.drop()
    client.close()
    return {"items": result.read, "seconds": seconds}


def run_child(arguments: list[str]) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, "-m", "bench.fullload", "--child", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if output.returncode != 0:
        raise SystemExit(f"benchmark child {arguments} failed:\n{output.stderr[-3000:]}")
    return json.loads(output.stdout.strip().splitlines()[-1])


def child_main(arguments: list[str]) -> None:
    if arguments[0] == "convert":
        outcome = child_convert(arguments[1], arguments[2])
    else:
        outcome = child_import(arguments[1], arguments[2], arguments[3], int(arguments[4]))
    outcome["max_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(outcome))


# ---- report ---------------------------------------------------------------------------------------


def machine() -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as info:
        memory = int(re.search(r"MemTotal:\s+(\d+)", info.read()).group(1)) / 2**20
    from amazon.ion import simpleion

    return (
        f"nproc {os.cpu_count()}, {cpu}, {memory:.1f} GiB memory, load average {os.getloadavg()[0]:.2f} at start; "
        f"Python {platform.python_version()}, amazon-ion C extension {'on' if simpleion.c_ext else 'off'}"
    )


def parse_size(text: str) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMG]?)B?", text.strip().upper())
    if not match:
        raise argparse.ArgumentTypeError(f"size {text!r}: expected a number with KB, MB or GB, such as 20MB or 1GB")
    return int(float(match.group(1)) * {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}[match.group(2)])


def row(label: str, value: str, baseline: str, ratio: float | None, target: str = "") -> str:
    ratio_text = f"{ratio:6.2f}x" if ratio is not None else ""
    return f"  {label:<46} {value:>22} {baseline:>22} {ratio_text:>8} {target}"


def met(ratio: float, target: float, higher: bool = True) -> str:
    ok = ratio >= target if higher else ratio <= target
    return f"target {'>=' if higher else '<='} {target:g}x: {'met' if ok else 'NOT met'}"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        child_main(argv[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default=parse_size("8MB"), help="uncompressed size of each export (8MB; 1GB for the full run)")
    parser.add_argument("--rounds", type=int, default=3, help="conversion and import rounds; the best is reported")
    parser.add_argument("--import-items", type=int, default=10_000, help="documents per import round")
    parser.add_argument("--import-rounds", type=int, default=5, help="import rounds (short, and noisier than conversion)")
    parser.add_argument("--memory-items", type=int, default=4_000, help="items of the 1x memory runs (10x is ten times more)")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--workdir", type=Path, default=ROOT / ".sandbox" / "bench")
    parser.add_argument("--skip-import", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args(argv)

    print(f"machine: {machine()}", flush=True)
    exports = {fmt: ensure_export(args.workdir, fmt, args.size) for fmt in FORMATS}
    for fmt, (path, items) in exports.items():
        print(f"export {fmt}: {items:,} items, {path.stat().st_size / 2**20:,.1f} MiB uncompressed ({path})", flush=True)

    ion_path, ion_items = exports["ION"]
    candidates = {
        "baseline": (baseline_convert, ion_path),
        "ION": (project_convert("ION"), ion_path),
        "DYNAMODB_JSON": (project_convert("DYNAMODB_JSON"), exports["DYNAMODB_JSON"][0]),
        "ION, Python path": (project_convert("ION", compiled=False), ion_path),
        "DYNAMODB_JSON, Python path": (project_convert("DYNAMODB_JSON", compiled=False), exports["DYNAMODB_JSON"][0]),
    }
    timings: dict[str, list[Timing]] = {name: [] for name in candidates}
    for round_number in range(args.rounds):
        for name, (convert, path) in candidates.items():
            timings[name].append(time_convert(convert, path))
        print(f"conversion round {round_number + 1}/{args.rounds} done", flush=True)
    best = {name: min(runs, key=lambda t: t.cpu) for name, runs in timings.items()}
    rate = {name: t.items / t.cpu for name, t in best.items()}
    megabytes = {name: candidates[name][1].stat().st_size / 2**20 / t.cpu for name, t in best.items()}
    # The amazon-ion distribution ships a C extension; its pure-Python reader is the seed's speed
    # wherever that extension is missing. Shown for context on a slice of the export.
    from amazon.ion import simpleion

    simpleion.c_ext = False
    pure = time_convert(baseline_convert, ion_path, limit=min(ion_items, 5_000))
    simpleion.c_ext = True

    print("\nconversion (best of rounds; CPU time of one process, so per core)")
    print(row("", "this project", "baseline", None) + " ratio")
    base = f"{rate['baseline']:,.0f} it/s {megabytes['baseline']:.1f} MB/s"
    for name in FORMATS:
        ours = f"{rate[name]:,.0f} it/s {megabytes[name]:.1f} MB/s"
        ratio = rate[name] / rate["baseline"]
        print(row(f"{name} -> canonical Extended JSON", ours, base, ratio, met(ratio, TARGETS[name])))
    for name in FORMATS:
        python = f"{name}, Python path"
        ours = f"{rate[python]:,.0f} it/s {megabytes[python]:.1f} MB/s"
        print(row(f"{name}, without the compiled conversion", ours, base, rate[python] / rate["baseline"]))
    print(row("baseline with amazon-ion's pure-Python reader", f"{pure.items / pure.cpu:,.0f} it/s", base, pure.items / pure.cpu / rate["baseline"]))
    print(f"  wall clock of the best rounds: " + ", ".join(f"{n} {t.wall:.1f}s" for n, t in best.items()))
    for name in FORMATS:
        costs = component_costs(name, exports[name][0])
        print(f"  {name} per item, Python path: " + ", ".join(f"{part} {us:.1f} us" for part, us in costs.items()))

    uri_context = None
    if not (args.skip_import and args.skip_memory):
        from dynamo2mongo.sandbox.servers import MONGO_JAVA_SERVER_VERSION, mongo_server

        uri_context = mongo_server()
        uri = uri_context.__enter__()
        server = "$MONGO_URI" if os.environ.get("MONGO_URI") else f"mongo-java-server {MONGO_JAVA_SERVER_VERSION}"
    try:
        if not args.skip_import:
            lines = extjson_lines(args.import_items)
            rates = time_imports(uri, lines, args.import_rounds, args.batch_size)
            raw, imported, rerun = max(rates["raw"]), max(rates["import"]), max(rates["rerun"])
            print(f"\nimport of {len(lines):,} documents into {server}, batches of {args.batch_size} (best of rounds; wall clock)")
            print(row("", "this project", "insert_many", None) + " ratio")
            print(row("import_lines (new documents)", f"{imported:,.0f} docs/s", f"{raw:,.0f} docs/s", imported / raw, met(imported / raw, IMPORT_TARGET)))
            print(row("import_lines rerun (all there, guarded)", f"{rerun:,.0f} docs/s", f"{raw:,.0f} docs/s", rerun / raw))
            print(f"  every round, docs/s: raw {', '.join(f'{r:,.0f}' for r in rates['raw'])}; "
                  f"import {', '.join(f'{r:,.0f}' for r in rates['import'])}; rerun {', '.join(f'{r:,.0f}' for r in rates['rerun'])}")
        if not args.skip_memory:
            report_memory(args, uri)
    finally:
        if uri_context is not None:
            uri_context.__exit__(None, None, None)


def report_memory(args: argparse.Namespace, uri: str) -> None:
    small, large = args.memory_items, args.memory_items * 10
    print("\npeak memory (RSS high-water mark of a child process running one task)")
    print(row("", f"10x ({large:,} items)", f"1x ({small:,} items)", None) + " growth")
    for fmt in FORMATS:
        runs = {count: run_child(["convert", fmt, str(gzip_export(args.workdir, fmt, count))]) for count in (small, large)}
        growth = runs[large]["max_rss_kb"] / runs[small]["max_rss_kb"]
        print(row(f"convert task, {fmt} (gzip in and out)", _rss(runs[large]), _rss(runs[small]), growth, met(growth, MEMORY_GROWTH_LIMIT, higher=False)))
    sources = {}
    for count in (small, large):
        sources[count] = args.workdir / f"extjson-{count}.jsonl.gz"
        if not sources[count].exists():
            with gzip.open(sources[count], "wb", compresslevel=1) as out:
                out.writelines(extjson_lines(count))
    runs = {count: run_child(["import", str(sources[count]), uri, f"memory_{count}", str(args.batch_size)]) for count in (small, large)}
    growth = runs[large]["max_rss_kb"] / runs[small]["max_rss_kb"]
    print(row("import task (gzip'd Extended JSON in)", _rss(runs[large]), _rss(runs[small]), growth, met(growth, MEMORY_GROWTH_LIMIT, higher=False)))


def _rss(run: dict[str, Any]) -> str:
    return f"{run['max_rss_kb'] / 1024:,.0f} MiB, {run['items'] / run['seconds']:,.0f} it/s"


if __name__ == "__main__":
    main()
