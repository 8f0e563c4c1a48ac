#!/usr/bin/env python3
"""Turns the raw output of benches/run.sh into benches/results/RESULTS.md and chart.svg.

    report.py report WORK_DIR OUT_DIR          write the table and the chart
    report.py wrk-line BODY WORKERS REP < out  one JSON line from wrk's output (+ bash `times`)

Standard library only, so the benchmark needs nothing beyond python3.
"""

import json
import math
import re
import statistics
import sys
from pathlib import Path

CLIENTS = [
    ("sentinel", "http-sentinel"),
    ("ureq", "ureq, Agent per thread"),
    ("ureq-8k", "ureq, Agent per thread, 8 KiB buffers"),
    ("ureq-shared", "ureq, one shared Agent"),
    ("reqwest", "reqwest blocking"),
    ("reqwest-async", "reqwest async, tokio 1 thread"),
    ("curl", "libcurl, Easy per thread"),
    ("raw", "raw TcpStream loop"),
    ("wrk", "wrk (C event loop; reference)"),
]
NAMES = dict(CLIENTS)
BASELINE = "ureq"
# The library's buffer sizes: the like-for-like comparison.
BASELINE_8K = "ureq-8k"
# (body, workers, held): held = every worker holds its client and a kept-alive connection for
# the whole run (`peers --hold`).
CELLS = [
    ("small", 1, False),
    ("small", 8, False),
    ("small", 100, False),
    ("small", 1000, False),
    ("small", 1000, True),
    ("16k", 8, False),
]
CELL_LABEL = {(b, w, h): f"{w}" for b, w, h in CELLS} | {
    ("small", 1000, True): "1000 held",
    ("16k", 8, False): "8, 16 KiB",
}
COLORS = {
    "sentinel": "#d62728",
    "ureq": "#1f77b4",
    "ureq-8k": "#aec7e8",
    "ureq-shared": "#17becf",
    "reqwest": "#2ca02c",
    "reqwest-async": "#98df8a",
    "curl": "#9467bd",
    "raw": "#7f7f7f",
    "wrk": "#bcbd22",
}


def wrk_line(body, workers, rep):
    """wrk's summary plus the `times` of the subshell that ran it, as one runs.jsonl line."""
    text = sys.stdin.read()
    rec = {"phase": "run", "body": body, "rep": int(rep), "client": "wrk", "workers": int(workers)}
    m = re.search(r"(\d+) requests in ([\d.]+)(m?s)", text)
    rps = re.search(r"Requests/sec:\s*([\d.]+)", text)
    if not (m and rps):
        rec |= {"failed": True, "output": text[-300:]}
        print(json.dumps(rec))
        return
    n = int(m.group(1))
    errors = 0
    for pat in (r"Non-2xx or 3xx responses:\s*(\d+)",):
        e = re.search(pat, text)
        errors += int(e.group(1)) if e else 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if sock:
        errors += sum(int(x) for x in sock.groups())
    # `times` prints the shell's own times, then its children's: "0m1.234s 0m0.567s".
    times = re.findall(r"(\d+)m([\d.]+)s (\d+)m([\d.]+)s", text)
    rec |= {"ok": n - errors, "errors": errors, "req_per_s": float(rps.group(1)), "total": n}
    if times:
        um, us, sm, ss = times[-1]
        cpu = (int(um) * 60 + float(us) + int(sm) * 60 + float(ss)) * 1e9
        rec["cpu_ns_per_req"] = cpu / max(n, 1)
    print(json.dumps(rec))


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt_int(x):
    return "—" if x is None else f"{x:,.0f}"


def ratios(x, base, base8):
    """Ratio to bare ureq and to bare ureq with the library's 8 KiB buffers."""
    if x is None or not (base or base8):
        return ""
    parts = [f"{x / b:.2f}×" if b else "—" for b in (base, base8)]
    return f" ({' · '.join(parts)})"


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if i == 0 else "--:" for i in range(len(head))) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def load(work):
    runs = [json.loads(l) for l in (work / "runs.jsonl").read_text().splitlines() if l.strip()]
    machine = dict(
        l.split("=", 1) for l in (work / "machine.txt").read_text().splitlines() if "=" in l
    )
    return runs, machine


def callgrind_ir(path):
    """Total instructions of a callgrind output file (its `summary:` or `totals:` line)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    for key in ("summary:", "totals:"):
        m = re.search(rf"^{key}\s*(\d+)", text, re.M)
        if m:
            return int(m.group(1))
    return None


def strace_calls(path):
    """Total system calls from `strace -c` (the `total` row's calls column)."""
    try:
        for line in path.read_text().splitlines():
            f = line.split()
            if f and f[-1] == "total":
                return int(f[3])
    except (OSError, ValueError, IndexError):
        pass
    return None


def busy_note(m):
    """The other processes' CPU use sampled before each phase, for the header."""
    busy = [int(x) for x in m.get("background_busy", "").split()]
    if not busy:
        return ""
    span = f"{min(busy)}–{max(busy)}%" if min(busy) != max(busy) else f"{max(busy)}%"
    return f" Other processes' CPU use, sampled before each phase: {span}."


def report(work, out):
    runs, m = load(work)
    reps = m.get("reps", "?")
    n1, n2 = int(m.get("cg_n1", 0)), int(m.get("cg_n2", 0))
    big = int(m.get("idle_big", 1000))

    def cell_runs(client, body, workers, phase="run", held=False):
        return [
            r
            for r in runs
            if r.get("phase") == phase
            and r.get("client") == client
            and r.get("body") == body
            and r.get("workers") == workers
            and bool(r.get("hold")) == held
        ]

    def med(client, body, workers, key, phase="run", held=False):
        return median(
            r.get(key)
            for r in cell_runs(client, body, workers, phase, held)
            if not r.get("failed")
        )

    lines = [
        "# Peer benchmark results",
        "",
        f"Machine: {m.get('nproc')} cores, {m.get('cpu')}, {m.get('kernel')}; {m.get('date')}; "
        f"nginx {m.get('nginx')} pinned to CPU {m.get('server_cpu')}, clients to CPU "
        f"{m.get('client_cpu')}; rustc {m.get('rustc')}; http-sentinel {m.get('commit', '?')}. Reproduce: `bash benches/run.sh`"
        + (" (this was a `--quick` smoke pass)" if m.get("quick") == "1" else "")
        + f". Medians of {reps} runs, client order rotated from one repetition to the next; "
        "(a× · b×) = ratio to bare ureq with one Agent per thread with its default 128 KiB "
        "buffers (a) and with the library's 8 KiB buffers (b), same run. "
        "Columns: concurrent workers (threads; tasks for reqwest async) on a 13-byte body, "
        "and 8 workers on a 16 KiB body. In every cell each worker checks out (or builds) its "
        "client before the clock starts and keeps it to the end; in \"1000 held\" each also "
        "sends one warm-up request before the clock starts, so every client holds a kept-alive "
        "connection for the whole run (one shared Agent keeps only 3 idle ones, so it opens "
        "more and holds fewer; reqwest async is not run there)." + busy_note(m),
        "",
    ]
    cols = [CELL_LABEL[c] for c in CELLS]

    def compared(c, body, w, h, key, show):
        v = med(c, body, w, key, held=h)
        base, base8 = (med(b, body, w, key, held=h) for b in (BASELINE, BASELINE_8K))
        if v is None:
            return "—"
        return show(v) + ("" if c == BASELINE else ratios(v, base, None if c == BASELINE_8K else base8))

    rows = []
    for c, name in CLIENTS:
        rows.append([name] + [compared(c, b, w, h, "req_per_s", fmt_int) for b, w, h in CELLS])
    lines += table(["**requests/s**"] + cols, rows) + [""]

    rows = []
    for c, name in CLIENTS:
        show = lambda v: f"{v / 1000:.1f}"
        rows.append([name] + [compared(c, b, w, h, "cpu_ns_per_req", show) for b, w, h in CELLS])
    lines += table(["**CPU µs/request** (user+sys)"] + cols, rows) + [""]

    rows = []
    total_errors = 0
    for c, name in CLIENTS:
        if c == "wrk":
            continue
        row = [name]
        for body, w, h in CELLS:
            rs = cell_runs(c, body, w, held=h)
            rss, conns = med(c, body, w, "peak_rss_kb", held=h), med(c, body, w, "conns_opened", held=h)
            errs = sum(r.get("errors", 0) + r.get("warmup_errors", 0) for r in rs)
            failed = sum(1 for r in rs if r.get("failed"))
            total_errors += errs + failed
            cell = "—" if rss is None else f"{rss / 1024:.1f} · {fmt_int(conns)}"
            held_now = med(c, body, w, "held_connections", held=h)
            if h and held_now is not None:
                cell += f" · {fmt_int(held_now)} open"
            if errs:
                cell += f" · **{errs} errors**"
            if failed:
                cell += f" · **{failed} runs failed**"
            row.append(cell)
        rows.append(row)
    lines += table(
        ["**peak RSS MiB · conns accepted** (held: · open when all finished)"] + cols, rows
    ) + [""]

    lines.append(
        f"Per request on 1 worker, and idle cost per worker (instructions: callgrind, "
        f"user space, (Ir({n2:,}) − Ir({n1:,})) / {n2 - n1:,}; syscalls: strace -f -c, same "
        f"difference; idle: (RSS with {big} parked workers − RSS with 1) / {big - 1}, each "
        f"worker holding its kept-alive connection)"
    )
    lines.append("")
    rows = []
    per_client = {}
    for c, _ in CLIENTS:
        if c == "wrk":
            continue
        a, b = (callgrind_ir(work / "callgrind" / f"{c}.{n}.out") for n in (n1, n2))
        ir = (b - a) / (n2 - n1) if a is not None and b is not None and n2 > n1 else None
        sa, sb = (strace_calls(work / "strace" / f"{c}.{n}.txt") for n in (n1, n2))
        sc = (sb - sa) / (n2 - n1) if sa is not None and sb is not None and n2 > n1 else None
        r1, rb = med(c, "small", 1, "rss_parked_kb", "idle"), med(c, "small", big, "rss_parked_kb", "idle")
        held = med(c, "small", big, "held_connections", "idle")
        per = (rb - r1) / (big - 1) if r1 is not None and rb is not None else None
        per_client[c] = (ir, sc, per, held)
    base = per_client.get(BASELINE, (None,) * 4)
    base8 = per_client.get(BASELINE_8K, (None,) * 4)

    def vs(c, i):
        if c == BASELINE:
            return ""
        return ratios(per_client[c][i], base[i], None if c == BASELINE_8K else base8[i])

    rows = []
    for c, name in CLIENTS:
        if c == "wrk":
            continue
        ir, sc, per, held = per_client[c]
        rows.append(
            [
                name,
                fmt_int(ir) + vs(c, 0),
                "—" if sc is None else f"{sc:.1f}",
                "—" if per is None else f"{per:,.1f} KiB" + vs(c, 2),
                fmt_int(held),
            ]
        )
    lines += table(
        ["client", "instructions/req", "syscalls/req", "idle RSS/worker", f"conns held by {big}"], rows
    )
    lines += [
        "",
        "![throughput and CPU per request against workers](chart.svg)",
        "",
        f"Errors and failed runs over the whole benchmark: {total_errors}. "
        f"Measurement took {int(m.get('wall_secs', 0)) // 60} min {int(m.get('wall_secs', 0)) % 60} s.",
    ]
    # How far repeats of one cell disagree: max/min of req/s, the median over all cells.
    spreads = []
    for c, _ in CLIENTS:
        for body, w, h in CELLS:
            v = [r["req_per_s"] for r in cell_runs(c, body, w, held=h) if r.get("req_per_s")]
            if len(v) > 1 and min(v) > 0:
                spreads.append(max(v) / min(v))
    if spreads:
        lines[-1] += (
            f" Repeats of a cell differ by {statistics.median(spreads):.2f}× in req/s "
            f"(max/min, median over cells; worst {max(spreads):.2f}×): read throughput ratios "
            "within ±20% as ties; instructions, syscalls, memory and connections are deterministic."
        )
    busy = [int(x) for x in m.get("background_busy", "").split()]
    if busy:
        lines[-1] += (
            " CPU use by other processes, sampled before each phase: "
            + (f"{min(busy)}–{max(busy)}%" if min(busy) != max(busy) else f"{max(busy)}%")
            + (" (**busy machine: throughput and CPU numbers are noisier than usual**)." if max(busy) >= 10 else ".")
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "RESULTS.md").write_text("\n".join(lines) + "\n")
    (out / "chart.svg").write_text(chart(med, m))


def nice_max(v):
    """A round axis maximum at or above v (1, 2, 2.5 or 5 times a power of ten)."""
    if v <= 0:
        return 1
    p = 10 ** math.floor(math.log10(v))
    for f in (1, 2, 2.5, 5, 10):
        if v <= f * p:
            return f * p
    return 10 * p


def chart(med, m):
    """Two panels (throughput and CPU per request against workers, log x), one line per client."""
    W, H = 1000, 470
    pw, ph = 380, 300  # plot area of one panel
    panels = [
        (80, "Throughput (requests/s)", "req_per_s", 1.0),
        (570, "CPU per request (µs, user + system)", "cpu_ns_per_req", 1e-3),
    ]
    top = 50
    xs = [w for b, w, h in CELLS if b == "small" and not h]
    lx0, lx1 = math.log10(xs[0]), math.log10(xs[-1])
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="15">Peer clients against one '
        f'nginx core, 13-byte body ({m.get("nproc")} cores, {m.get("cpu")}; {m.get("date")})</text>',
    ]
    for x0, title, key, scale in panels:
        series = {}
        for c, _ in CLIENTS:
            pts = [(w, med(c, "small", w, key)) for w in xs]
            pts = [(w, v * scale) for w, v in pts if v is not None]
            if pts:
                series[c] = pts
        ymax = nice_max(max((v for pts in series.values() for _, v in pts), default=1))

        def px(w):
            return x0 + (math.log10(w) - lx0) / (lx1 - lx0) * pw

        def py(v):
            return top + ph - v / ymax * ph

        svg.append(f'<text x="{x0 + pw / 2}" y="{top - 10}" text-anchor="middle" font-weight="bold">{title}</text>')
        svg.append(f'<rect x="{x0}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>')
        for i in range(6):
            v = ymax * i / 5
            y = py(v)
            svg.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + pw}" y2="{y:.1f}" stroke="#ddd"/>')
            label = f"{v / 1000:g}k" if key == "req_per_s" and v else f"{v:g}"
            svg.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
        for w in xs:
            x = px(w)
            svg.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + ph}" stroke="#eee"/>')
            svg.append(f'<text x="{x:.1f}" y="{top + ph + 16}" text-anchor="middle">{w}</text>')
        svg.append(f'<text x="{x0 + pw / 2}" y="{top + ph + 34}" text-anchor="middle">workers (log scale)</text>')
        for c, pts in series.items():
            path = " ".join(f"{px(w):.1f},{py(v):.1f}" for w, v in pts)
            dash = ' stroke-dasharray="5,4"' if c == "wrk" else ""
            width = 3 if c in ("sentinel", BASELINE) else 2
            svg.append(f'<polyline points="{path}" fill="none" stroke="{COLORS[c]}" stroke-width="{width}"{dash}/>')
            for w, v in pts:
                svg.append(f'<circle cx="{px(w):.1f}" cy="{py(v):.1f}" r="3" fill="{COLORS[c]}"/>')
    # Legend: rows of five under the panels.
    for i, (c, name) in enumerate(CLIENTS):
        x = 40 + (i % 5) * 190
        y = top + ph + 62 + (i // 5) * 22
        dash = ' stroke-dasharray="5,4"' if c == "wrk" else ""
        svg.append(f'<line x1="{x}" y1="{y - 4}" x2="{x + 24}" y2="{y - 4}" stroke="{COLORS[c]}" stroke-width="3"{dash}/>')
        svg.append(f'<text x="{x + 30}" y="{y}">{name}</text>')
    svg.append("</svg>")
    return "\n".join(svg) + "\n"


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "wrk-line":
        wrk_line(*sys.argv[2:])
    elif len(sys.argv) == 4 and sys.argv[1] == "report":
        report(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
