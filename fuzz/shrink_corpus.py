#!/usr/bin/env python3
"""Shrinks corpus/<target>/ to a small set of files that keeps its edge coverage.

`cargo fuzz cmin` keeps every input that adds a feature in size order, which leaves hundreds
of files per target; this picks greedily the file that covers the most uncovered edges instead,
after measuring each file's full edge set with one libFuzzer merge run per file
(`-use_counters=0`: edges, not hit counts). Hand-written `seed-*` and `regression-*` files are
always kept; files of 4 KiB or more are dropped, and picking stops at MAX_FILES files (the
last picks each add only an edge or two).

Usage, from fuzz/ after `RUSTC_BOOTSTRAP=1 cargo fuzz build <target>`:
    python3 shrink_corpus.py <target> [more corpus dirs to fold in, e.g. a campaign's output]
"""

import hashlib
import pathlib
import shutil
import subprocess
import sys
import tempfile

FUZZ = pathlib.Path(__file__).resolve().parent
KEEP = ("seed-", "regression-")
MAX_SIZE = 4096
MAX_FILES = 200


def edges(binary, data, scratch):
    """The edge features one input covers, or None when it crashes the target."""
    one, out = scratch / "one", scratch / "out"
    for d in (one, out):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
    (one / "input").write_bytes(data)
    control = scratch / "control"
    control.unlink(missing_ok=True)
    subprocess.run(
        [binary, "-use_counters=0", "-merge=1", f"-merge_control_file={control}", out, one],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
    )
    if not control.exists():
        return None
    for line in control.read_text().splitlines():
        if line.startswith("FT "):
            return set(line.split()[2:])
    return None


def main():
    target = sys.argv[1]
    corpus = FUZZ / "corpus" / target
    binary = FUZZ / "target" / "x86_64-unknown-linux-gnu" / "release" / target
    inputs = {}
    for d in [corpus] + [pathlib.Path(p) for p in sys.argv[2:]]:
        for f in sorted(d.iterdir()):
            if f.is_file() and not f.name.startswith("."):
                data = f.read_bytes()
                name = f.name if f.name.startswith(KEEP) else hashlib.sha1(data).hexdigest()
                if len(data) < MAX_SIZE or name.startswith(KEEP):
                    inputs.setdefault(name, data)
    with tempfile.TemporaryDirectory() as tmp:
        features = {n: edges(binary, d, pathlib.Path(tmp)) for n, d in inputs.items()}
    kept = [n for n in inputs if n.startswith(KEEP)]
    covered = set().union(*(features[n] or set() for n in kept))
    candidates = {n: f for n, f in features.items() if f and not n.startswith(KEEP)}
    picked = []
    while candidates and len(kept) + len(picked) < MAX_FILES:
        best = max(candidates, key=lambda n: (len(candidates[n] - covered), -len(inputs[n])))
        if not candidates[best] - covered:
            break
        covered |= candidates.pop(best)
        picked.append(best)
    for f in corpus.iterdir():
        if f.is_file() and not f.name.startswith(KEEP):
            f.unlink()
    for n in picked:
        (corpus / n).write_bytes(inputs[n])
    total = set().union(*(f for f in features.values() if f))
    print(f"{target}: {len(inputs)} inputs, {len(covered)} of {len(total)} edges kept by "
          f"{len(kept)} seeds/regressions + {len(picked)} picked")


if __name__ == "__main__":
    main()
