#!/usr/bin/env python3
"""Summarise pytest JUnit XML results against an expected-failures list.

Used by scripts/pymongo-suite.sh (pymongo's own test suite, one XML per test file) and by
scripts/test.sh (our tests/python suite). Standard library only, so it runs with any python3.

Input: a results directory holding, per test file, `<stem>.xml` (pytest --junitxml) and
`<stem>.meta.json` ({"file": "test/test_x.py", "rc": int, "seconds": float, "timed_out": bool}).

Test ids are pytest node ids: `test/test_x.py::TestClass::test_name` (`test/test_x.py::test_fn`
for module-level functions). The expected-failures file has one id per line followed by
` # reason`; blank lines and lines starting with `#` are ignored; an id containing `*` is an
fnmatch pattern.

Exit status: 0 when every failure is expected, tests were collected and (unless
--allow-zero-passed) at least one passed; 1 otherwise. With --totals-out, writes
`passed failed skipped expected_failed unexpected_failed` (one line, numbers) for scripts/test.sh,
where `failed` counts every failed or errored test, expected or not.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


@dataclass
class FileResult:
    file: str
    rc: int | None = None
    seconds: float = 0.0
    timed_out: bool = False
    xml_missing: bool = False
    tests: dict[str, str] = field(default_factory=dict)  # id -> status
    messages: dict[str, str] = field(default_factory=dict)  # id -> failure or skip message

    def count(self, status: str) -> int:
        return sum(1 for s in self.tests.values() if s == status)


def module_of(file: str) -> str:
    """`test/test_x.py` -> `test.test_x` (what pytest puts in a testcase's classname)."""
    p = file[:-3] if file.endswith(".py") else file
    return p.replace("/", ".").strip(".")


def node_id(file: str, classname: str, name: str) -> str:
    mod = module_of(file)
    if classname == mod or not classname:
        return f"{file}::{name}"
    if classname.startswith(mod + "."):
        return f"{file}::{classname[len(mod) + 1:].replace('.', '::')}::{name}"
    # A classname from another module (e.g. a collection error): keep it readable.
    return f"{file}::{classname}::{name}"


def first_line(text: str | None, limit: int = 200) -> str:
    if not text:
        return ""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


RANK = {PASSED: 0, SKIPPED: 1, FAILED: 2}


def parse_file(xml_path: Path, meta: dict) -> FileResult:
    res = FileResult(
        file=meta.get("file", xml_path.stem),
        rc=meta.get("rc"),
        seconds=float(meta.get("seconds", 0.0)),
        timed_out=bool(meta.get("timed_out", False)),
    )
    if not xml_path.exists():
        res.xml_missing = True
        return res
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as exc:
        res.xml_missing = True
        res.messages["<xml>"] = f"unparseable junit xml: {exc}"
        return res
    for case in root.iter("testcase"):
        # A results entry may cover a whole directory (tests/python): then the per-test `file`
        # attribute (pytest -o junit_family=xunit1) names the module.
        file = res.file if res.file.endswith(".py") else case.get("file") or res.file
        tid = node_id(file, case.get("classname", ""), case.get("name", "?"))
        status, message = PASSED, ""
        for child in case:
            if child.tag in ("failure", "error"):
                status = FAILED
                message = first_line(child.get("message")) or first_line(child.text)
                break
            if child.tag == "skipped":
                status = SKIPPED
                message = child.get("message") or first_line(child.text) or "(no reason)"
        # pytest may report the same test twice (e.g. a teardown error): keep the worst.
        if tid not in res.tests or RANK[status] > RANK[res.tests[tid]]:
            res.tests[tid] = status
            res.messages[tid] = message
    return res


def load_expected(path: Path | None) -> dict[str, str]:
    expected: dict[str, str] = {}
    if path is None or not path.exists():
        return expected
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        tid, _, reason = line.partition(" # ")
        expected[tid.strip()] = reason.strip()
    return expected


def is_expected(tid: str, expected: dict[str, str]) -> str | None:
    """Returns the matching entry of the expected list, or None."""
    if tid in expected:
        return tid
    for pat in expected:
        if "*" in pat and fnmatch.fnmatchcase(tid, pat):
            return pat
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results_dir", type=Path)
    ap.add_argument("--expected", type=Path, help="expected-failures list")
    ap.add_argument("--label", default="suite", help="name used in the printed summary")
    ap.add_argument("--totals-out", type=Path, help="write 'passed failed skipped expected unexpected'")
    ap.add_argument("--allow-zero-passed", action="store_true", help="do not fail when nothing passed")
    ap.add_argument(
        "--fail-on-skip-reason",
        action="append",
        default=[],
        metavar="REGEX",
        help="a skip whose reason matches is a problem (e.g. pymongo's 'Cannot connect to MongoDB')",
    )
    ap.add_argument("--skip-examples", type=int, default=3, help="test ids shown per skip reason")
    ap.add_argument(
        "--write-expected",
        type=Path,
        help="write a new expected-failures list: the current failures, keeping known reasons",
    )
    args = ap.parse_args()

    results: list[FileResult] = []
    for meta_path in sorted(args.results_dir.glob("*.meta.json")):
        meta = json.loads(meta_path.read_text())
        xml_path = meta_path.with_name(meta_path.name[: -len(".meta.json")] + ".xml")
        results.append(parse_file(xml_path, meta))

    expected = load_expected(args.expected)
    problems: list[str] = []

    # ---- per file ------------------------------------------------------------------------
    print(f"\n== {args.label}: per file ==")
    print(f"{'file':<48} {'passed':>7} {'failed':>7} {'skipped':>8} {'secs':>7}  note")
    for r in results:
        note = []
        if r.timed_out:
            note.append("TIMED OUT (file killed)")
        if r.xml_missing:
            note.append(f"no junit xml (pytest rc={r.rc})")
        elif r.rc not in (0, 1, None) and not r.timed_out:
            # 0 = all passed, 1 = some tests failed; 2..5 = interrupted / internal / usage / none collected.
            note.append(f"pytest rc={r.rc}")
        print(
            f"{r.file:<48} {r.count(PASSED):>7} {r.count(FAILED):>7} {r.count(SKIPPED):>8} "
            f"{r.seconds:>7.1f}  {'; '.join(note)}"
        )
        if r.timed_out or r.xml_missing or (r.rc not in (0, 1, None)):
            problems.append(f"{r.file}: {'; '.join(note) or f'pytest rc={r.rc}'}")

    all_tests = {tid: (st, r) for r in results for tid, st in r.tests.items()}
    passed = sum(1 for st, _ in all_tests.values() if st == PASSED)
    failed_ids = sorted(tid for tid, (st, _) in all_tests.items() if st == FAILED)
    skipped_ids = [tid for tid, (st, _) in all_tests.items() if st == SKIPPED]

    # ---- skips, grouped by reason ------------------------------------------------------------
    by_reason: dict[str, list[str]] = defaultdict(list)
    for tid in skipped_ids:
        by_reason[all_tests[tid][1].messages.get(tid, "")].append(tid)
    if by_reason:
        print(f"\n== {args.label}: skipped, by reason ({len(skipped_ids)} tests) ==")
        for reason, ids in sorted(by_reason.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            print(f"{len(ids):>5}  {reason}")
            for tid in sorted(ids)[: args.skip_examples]:
                print(f"         e.g. {tid}")

    # ---- failures vs expected -------------------------------------------------------------
    unexpected = [tid for tid in failed_ids if is_expected(tid, expected) is None]
    expected_hit = [tid for tid in failed_ids if is_expected(tid, expected) is not None]
    if unexpected:
        print(f"\n== {args.label}: UNEXPECTED failures ({len(unexpected)}) ==")
        for tid in unexpected:
            print(f"  FAIL {tid}\n       {all_tests[tid][1].messages.get(tid, '')}")
    if expected_hit:
        print(f"\n== {args.label}: expected failures ({len(expected_hit)}, listed in {args.expected}) ==")
        for tid in expected_hit:
            print(f"  xfail {tid}  # {expected[is_expected(tid, expected) or tid]}")

    ran_files = {r.file for r in results}
    now_passing, not_run = [], []
    for entry in sorted(expected):
        entry_file = entry.split("::", 1)[0]
        if not any(entry_file == f or entry_file.startswith(f.rstrip("/") + "/") for f in ran_files):
            continue  # that file was not part of this run
        if "*" in entry:
            if not any(fnmatch.fnmatchcase(t, entry) for t in failed_ids):
                now_passing.append(entry)
        elif entry not in all_tests:
            not_run.append(entry)
        elif all_tests[entry][0] == PASSED:
            now_passing.append(entry)
    if now_passing:
        print(f"\n== {args.label}: now passing, remove from {args.expected} ({len(now_passing)}) ==")
        for tid in now_passing:
            print(f"  {tid}")
    if not_run:
        print(f"\n== {args.label}: listed as expected failures but not found in this run ({len(not_run)}) ==")
        for tid in not_run:
            print(f"  {tid}")

    if args.write_expected:
        lines = [
            f"{tid} # {expected.get(tid) or 'TODO: ' + (all_tests[tid][1].messages.get(tid) or 'failing')}"
            for tid in failed_ids
        ]
        args.write_expected.write_text("".join(line + "\n" for line in lines))
        print(f"\nwrote {len(lines)} entries to {args.write_expected}")

    # ---- verdict --------------------------------------------------------------------------
    collected = len(all_tests)
    if collected == 0:
        problems.append("no tests were collected")
    elif passed == 0 and not args.allow_zero_passed:
        problems.append(
            f"0 of {collected} tests passed: the server was not reachable or every test was skipped "
            "(pymongo skips, rather than fails, tests when it cannot connect)"
        )
    for pattern in args.fail_on_skip_reason:
        hits = [tid for tid in skipped_ids if re.search(pattern, all_tests[tid][1].messages.get(tid, ""))]
        if hits:
            problems.append(
                f"{len(hits)} test(s) skipped with a reason matching {pattern!r}: the server under test "
                "was not reachable for them"
            )
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected failure(s)")

    print(
        f"\n{args.label}: {passed} passed, {len(failed_ids)} failed ({len(expected_hit)} expected, "
        f"{len(unexpected)} unexpected), {len(skipped_ids)} skipped"
    )
    for p in problems:
        print(f"{args.label}: PROBLEM: {p}")
    if args.totals_out:
        # A run-level problem (a crashed or timed-out file, an unreachable server, nothing
        # passed) has no per-test result: count each as one failure so the overall line never
        # reads "0 failed" for a broken run.
        broken = len(problems) - (1 if unexpected else 0)
        args.totals_out.write_text(
            f"{passed} {len(failed_ids) + broken} {len(skipped_ids)} {len(expected_hit)} "
            f"{len(unexpected) + broken}\n"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
