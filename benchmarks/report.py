"""Turn ``benchmarks/results/*.json`` into the charts and tables of the benchmarks page.

Each ``bench_*.py`` writes its own JSON layout; this script reads whichever files exist
(a missing or unreadable file is reported and skipped, never fatal), and writes:

- ``docs/images/bench-<name>.svg``: one horizontal bar chart per results file, sessionkit's
  contestants in one colour, the peers in another, baselines and floors in grey. The SVG is
  written by hand, so making the docs needs no plotting library;
- the part of ``docs/benchmarks.md`` between ``<!-- report:start -->`` and
  ``<!-- report:end -->``: per benchmark, when and where it ran, the chart, every
  contestant's figures, our figure beside each peer's with the ratio, and each goal from the
  issues with "met" or "not met".

    python benchmarks/report.py                       # read benchmarks/results, update docs
    python benchmarks/report.py --results DIR         # read another folder (e.g. a CI run)
    python benchmarks/report.py --check               # exit 1 if the docs are out of date

Ratios are recomputed from the figures in the JSON (ours / theirs, lower is better), so the
page cannot drift from the data it shows.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
DOCS = ROOT / "docs"
PAGE = DOCS / "benchmarks.md"
IMAGES = DOCS / "images"
START, END = "<!-- report:start -->", "<!-- report:end -->"

OURS, PEER, REFERENCE = "ours", "peer", "reference"
TIMES, NOTHING = "\u00d7", "\u2013"  # the multiplication sign; an en dash: "no figure"
COLOURS = {OURS: "#3f51b5", PEER: "#ef6c00", REFERENCE: "#9e9e9e"}
LEGEND = {OURS: "sessionkit", PEER: "peer library", REFERENCE: "baseline / floor"}


@dataclass
class Bar:
    """One contestant: its figure (µs) and what kind of contestant it is."""

    key: str
    label: str
    value: float
    kind: str
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class Comparison:
    """Our figure beside a peer's; ``target`` is the goal's ratio from the issue, if any."""

    ours: Bar
    theirs: Bar
    target: float | None = None
    goal: str = ""

    @property
    def ratio(self) -> float:
        return self.ours.value / self.theirs.value if self.theirs.value else float("inf")

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.ratio <= self.target


@dataclass
class Section:
    """One results file, normalised: what the chart and the tables are made of."""

    name: str
    title: str
    metric: str  # what the bars measure, e.g. "overhead per request (µs)"
    bars: list[Bar]
    comparisons: list[Comparison]
    when: str
    environment: dict[str, Any]
    settings: str
    extra_columns: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# -- reading each benchmark's layout ------------------------------------------------------


def _goal(issue: int, target: float | None) -> str:
    return f"issue {issue}: ≤ {target:g} {TIMES}" if target is not None else ""


def _kind(name: str, label: str = "") -> str:
    text = f"{name} {label}".lower()
    if "sessionkit" in text or text.startswith(("redis ", "memory ", "redisstore")):
        return OURS
    if any(w in text for w in ("baseline", "floor", "no session", "without session")):
        return REFERENCE
    if name == "none" or name.startswith("redis-py"):
        return REFERENCE
    return PEER


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _settings(data: dict[str, Any], *keys: str) -> str:
    settings = data.get("settings") if isinstance(data.get("settings"), dict) else data
    parts = []
    for key in keys:
        value = settings.get(key) if isinstance(settings, dict) else None
        if value is not None:
            parts.append(f"{key.replace('_', ' ')}: {value}")
    if isinstance(settings, dict) and settings.get("quick"):
        parts.append("**quick smoke run** (few iterations: treat as indicative only)")
    return "; ".join(parts)


def _pairs(
    bars: dict[str, Bar], specs: Iterable[tuple[str, str, float | None, str]]
) -> list[Comparison]:
    out = []
    for ours, theirs, target, goal in specs:
        if ours in bars and theirs in bars:
            out.append(Comparison(bars[ours], bars[theirs], target, goal))
    return out


def read_core(data: dict[str, Any]) -> Section:
    bars: dict[str, Bar] = {}
    for row in data.get("results", []):
        value = _num(row.get("us_per_cycle"))
        if value is None:
            continue
        name = str(row.get("name"))
        extra = {"best repeat (µs)": _fmt(row.get("best_us_per_cycle"))}
        bars[name] = Bar(name, str(row.get("label", name)), value, _kind(name), extra)
    goal = _dict(data.get("goal"))
    target = _num(goal.get("target_ratio")) if goal else 0.5
    specs = [
        ("sessionkit_cookie", "itsdangerous", target,
         f"issue 2: encrypted cookie cycle ≤ 0.5 {TIMES} itsdangerous's signed-only cycle"),
        ("sessionkit_cookie", "flask", None, ""),
        ("sessionkit_cookie", "starlette", None, ""),
        ("sessionkit_memory", "starlette", None, ""),
    ]  # fmt: skip
    return Section(
        "core", "Core request cycle (no framework)", "µs per request cycle (median)",
        list(bars.values()), _pairs(bars, specs), str(data.get("created", "?")),
        data.get("environment", {}), _settings(data, "repeats", "iterations", "gc_enabled"),
        ["best repeat (µs)"],
        ["Whole cycles, not overheads: open the cookie, change one key, build the next cookie. "
         "The Flask, Starlette and itsdangerous rows skip cookie-header parsing and "
         "`Set-Cookie` formatting, which sessionkit's rows include.", *_sealing_note(bars)],
    )  # fmt: skip


def _sealing_note(bars: dict[str, Bar]) -> list[str]:
    """issue 17's goal: encrypt_records costs at most 5 µs per request more than the same
    store unencrypted (both rows' medians, one run)."""
    sealed, plain = bars.get("sessionkit_sealed"), bars.get("sessionkit_memory")
    if sealed is None or plain is None:
        return []
    more = sealed.value - plain.value
    result = "met" if more <= 5 else "not met"
    return [f"`encrypt_records` costs {more:.1f} µs more per cycle than the same `memory://` "
            f"store unencrypted (issue 17: ≤ 5 µs): **{result}**."]  # fmt: skip


def read_asgi(data: dict[str, Any]) -> Section:
    bars: dict[str, Bar] = {}
    for row in data.get("results", []):
        value = _num(row.get("overhead_us"))
        name = str(row.get("name"))
        if value is None or name == "baseline":
            continue
        extra = {"request (µs)": _fmt(row.get("us_per_request"))}
        bars[name] = Bar(name, name.replace("_", " "), value, _kind(name), extra)
    goals = _dict(data.get("goals"))
    specs = []
    for key in data.get("ratios") or {}:
        ours, _, theirs = (part.strip() for part in key.partition("/"))
        target = _num(goals.get(key))
        specs.append((ours, theirs, target, _goal(16 if "cache" in key else 4, target)))
    notes = [
        "Overhead = the app's time per request with the middleware minus the same app "
        "without it (ASGI app called directly, no HTTP). `*_read` rows are requests that "
        "only read the session; the others read and write one key."
    ]
    notes += _hit_rate_notes(data)
    best = data.get("best_ratios")
    if isinstance(best, dict) and best:
        shown = ", ".join(f"{k} {v:g}" for k, v in best.items() if _num(v) is not None)
        notes.append(f"The same ratios taken from each contestant's best repeat: {shown}.")
    return Section(
        "asgi", "Starlette / FastAPI middleware", "overhead per request (µs, median)",
        list(bars.values()), _pairs(bars, specs), str(data.get("created", "?")),
        data.get("environment", {}), _settings(data, "repeats", "requests"),
        ["request (µs)"], notes,
    )  # fmt: skip


def read_flask(data: dict[str, Any]) -> Section:
    bars: dict[str, Bar] = {}
    for row in data.get("results", []):
        value = _num(row.get("overhead_us"))
        name = str(row.get("name"))
        if value is None or name == "none":
            continue
        extra = {
            "request (µs)": _fmt(row.get("us_per_request")),
            "CPU overhead (µs)": _fmt(row.get("cpu_overhead_us")),
        }
        label = str(row.get("label", name))
        bars[name] = Bar(name, label, value, _kind(name, label), extra)
    goals = _dict(data.get("goals"))
    redis_goal = _num(_dict(goals.get("redis")).get("target_ratio"))
    cookie_goal = _num(_dict(goals.get("cookie")).get("target_ratio"))
    specs = [
        ("sessionkit_redis", "flask_session_redis", redis_goal,
         f"issue 6: Redis overhead ≤ 0.5 {TIMES} Flask-Session's"),
        ("sessionkit_cookie", "flask", cookie_goal,
         "issue 6: cookie overhead ≤ Flask's signed cookie"),
        ("sessionkit_memory", "flask", None, ""),
        ("sessionkit_redis", "redis_floor", None, ""),
    ]  # fmt: skip
    cache_goals = {  # issue 16 (the local cache): goal name -> (ours, theirs)
        "cache_change": ("sessionkit_redis_cache_warm", "flask_session_redis"),
        "cache_change_floor": ("sessionkit_redis_cache_warm", "redis_floor"),
        "cache_read": ("sessionkit_redis_cache_warm_read", "flask_session_redis_read"),
        "cache_read_memory": ("sessionkit_redis_cache_warm_read", "sessionkit_memory_read"),
    }
    for name, (ours, theirs) in cache_goals.items():
        target = _num(_dict(goals.get(name)).get("target_ratio"))
        specs.append((ours, theirs, target, _goal(16, target)))
    specs += [
        ("sessionkit_redis_cache_cold", "sessionkit_redis", None, ""),
        ("sessionkit_redis_cache_cold_read", "sessionkit_redis_read", None, ""),
    ]
    return Section(
        "flask", "Flask", "overhead per request (µs, median)", list(bars.values()),
        _pairs(bars, specs), str(data.get("created", "?")), data.get("environment", {}),
        _settings(data, "repeats", "iterations"), ["request (µs)", "CPU overhead (µs)"],
        ["Overhead = time per request through Flask's test client minus the same view with no "
         "session. The floor is a bare redis-py GET and SET per request, the least any Redis "
         "session can cost.", *_hit_rate_notes(data)],
    )  # fmt: skip


def read_django(data: dict[str, Any]) -> Section:
    bars: dict[str, Bar] = {}
    for row in data.get("results", []):
        value = _num(row.get("overhead_us"))
        name = str(row.get("name"))
        if value is None or "baseline" in name:
            continue
        extra = {"request (µs)": _fmt(row.get("us_per_request"))}
        bars[name] = Bar(name, name, value, _kind(name), extra)
    specs = []
    for goal in data.get("goals") or []:
        if isinstance(goal, dict):
            target = _num(goal.get("goal"))
            specs.append((str(goal.get("ours")), str(goal.get("theirs")), target,
                          _goal(int(goal.get("issue", 5)), target)))  # fmt: skip
    if "sessionkit memory" in bars and "django signed_cookies" in bars:
        specs.append(("sessionkit memory", "django signed_cookies", None, ""))
    notes = [
        "Overhead = time per request through Django's WSGI handler minus the same view "
        "without sessions. Django's `db` backend runs on SQLite here, `cache` on Redis.",
        *_hit_rate_notes(data),
    ]
    for ours, theirs in (
        ("sessionkit redis cache cold", "sessionkit redis"),
        ("sessionkit redis cache cold, read-only", "sessionkit redis, read-only"),
    ):
        specs.append((ours, theirs, None, ""))  # fmt: skip
    floor = "redis-py GET + SET (floor)"
    if floor in bars:
        specs.append(("sessionkit redis", floor, None, ""))
        notes.append(
            "The floor is a middleware that does one redis-py GET before the view and one "
            "SET EX after it and nothing else: the least any Redis-backed session built on "
            "redis-py costs in this harness."
        )
        for goal in data.get("goals") or []:
            ratio = _num(goal.get("floor_ratio")) if isinstance(goal, dict) else None
            target = _num(goal.get("goal")) if isinstance(goal, dict) else None
            if ratio is not None and target is not None and ratio > target:
                notes.append(
                    f"The floor alone costs {ratio:.2f} {TIMES} Django's cache backend, above "
                    f"the issue 5 goal of {target:g} {TIMES}: that goal cannot be met by a "
                    "session that reads before the view and writes after it."
                )
    return Section(
        "django", "Django", "overhead per request (µs, median)", list(bars.values()),
        _pairs(bars, specs), str(data.get("when", data.get("created", "?"))),
        data.get("environment", {}), _settings(data, "repeats", "requests"), ["request (µs)"],
        notes,
    )  # fmt: skip


def _hit_rate_notes(data: dict[str, Any]) -> list[str]:
    """The local cache's hit rates (issue 16), when the run measured them."""
    rates = _dict(data.get("hit_rates"))
    shown = ", ".join(f"{k} {v:.1%}" for k, v in rates.items() if _num(v) is not None)
    if not shown:
        return []
    return [
        "`cache=on` rows: warm = every load served by the local cache and every change "
        "written through after its one round trip; cold = the cache flushed before every "
        f"request. Hit rates in this run: {shown}."
    ]


def read_stores(data: dict[str, Any]) -> Section:
    bars: dict[str, Bar] = {}
    for row in data.get("results", []):
        value = _num(row.get("us_per_request"))
        if value is None:
            continue
        name, request, flavour = (str(row.get(k, "")) for k in ("name", "request", "flavour"))
        key = f"{name} {request} {flavour}".strip()
        base = str(row.get("label", name))
        if name == "redis-py":  # the floor does the least each kind of request needs
            base = "redis-py GET" if request == "read" else "redis-py GET + SET EX"
        label = f"{base}, {request} ({flavour})"
        extra = {
            "round trips": _fmt(row.get("round_trips_per_request")),
            "commands": _fmt(row.get("commands_per_request")),
        }
        bars[key] = Bar(key, label, value, _kind(name, str(row.get("label", ""))), extra)
    goal = _dict(data.get("goal"))
    target = _num(goal.get("ratio")) if goal else 1.3
    specs = []
    for row in data.get("results", []):
        floor = row.get("floor")
        if floor:
            request, flavour = row.get("request", ""), row.get("flavour", "")
            ours = f"{row.get('name')} {request} {flavour}".strip()
            theirs = f"{floor} {request} {flavour}".strip()
            specs.append((ours, theirs, target, f"issue 3: ≤ 1.3 {TIMES} the raw client's floor"))
    return Section(
        "stores", "Stores (Redis beside bare redis-py)", "µs per request cycle (median)",
        list(bars.values()), _pairs(bars, specs), str(data.get("created", "?")),
        data.get("environment", {}), _settings(data, "repeats", "iterations"),
        ["round trips", "commands"],
        ["A read request loads the session; a change request loads it and saves one key. "
         "The floor is redis-py doing the minimum for the same request (GET, or GET + SET EX)."],
    )  # fmt: skip


def read_other(name: str, data: dict[str, Any]) -> Section:
    """A results file this script has no reader for: chart whatever µs figures it holds."""
    bars = []
    for row in data.get("results", []) if isinstance(data.get("results"), list) else []:
        for field_name in ("overhead_us", "us_per_request", "us_per_cycle"):
            value = _num(row.get(field_name)) if isinstance(row, dict) else None
            if value is not None:
                label = str(row.get("label", row.get("name", "?")))
                bars.append(Bar(label, label, value, _kind(str(row.get("name", "")), label)))
                break
    return Section(
        name, str(data.get("benchmark", name)), "µs (median)", bars, [],
        str(data.get("created", data.get("when", "?"))), data.get("environment", {}), "",
    )  # fmt: skip


READERS: dict[str, Callable[[dict[str, Any]], Section]] = {
    "core": read_core, "asgi": read_asgi, "flask": read_flask, "django": read_django,
    "stores": read_stores,
}  # fmt: skip
ORDER = ["core", "asgi", "flask", "django", "stores"]


def load_sections(results: Path) -> tuple[list[Section], list[str]]:
    """Every results file that can be read, in page order, and a line per problem."""
    sections: list[Section] = []
    problems: list[str] = []
    files = {p.stem: p for p in sorted(results.glob("*.json"))}
    for name in ORDER:
        if name not in files:
            problems.append(f"{name}: no results/{name}.json yet (run bench_{name}.py)")
    for name in sorted(files, key=lambda n: (ORDER.index(n) if n in ORDER else 99, n)):
        path = files[name]
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            reader = READERS.get(name)
            section = reader(data) if reader else read_other(name, data)
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            problems.append(f"{name}: {path.name} could not be read ({exc}); skipped")
            continue
        if not section.bars:
            problems.append(f"{name}: {path.name} holds no figures; skipped")
            continue
        sections.append(section)
    return sections, problems


# -- SVG ----------------------------------------------------------------------------------

WIDTH, LABEL_W, ROW_H, TOP, VALUE_W = 760, 300, 24, 44, 90


def svg_chart(section: Section) -> str:
    """A horizontal bar chart, one bar per contestant, readable on light and dark themes."""
    bars = section.bars
    height = TOP + ROW_H * len(bars) + 36
    biggest = max((b.value for b in bars), default=1.0) or 1.0
    span = WIDTH - LABEL_W - VALUE_W - 10
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" font-family="system-ui, sans-serif" '
        f'font-size="13">',
        f"<title>{escape(section.title)}: {escape(section.metric)}</title>",
        f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
        f'<text x="10" y="20" font-size="15" font-weight="600" fill="#212121">'
        f"{escape(section.title)}</text>",
        f'<text x="10" y="36" fill="#616161">{escape(section.metric)}; shorter is faster</text>',
    ]
    for row, bar in enumerate(bars):
        y = TOP + row * ROW_H
        width = max(1.0, span * bar.value / biggest)
        out.append(
            f'<text x="{LABEL_W - 8}" y="{y + 16}" text-anchor="end" fill="#212121">'
            f"{escape(_short(bar.label, 44))}</text>"
        )
        out.append(
            f'<rect x="{LABEL_W}" y="{y + 4}" width="{width:.1f}" height="{ROW_H - 8}" '
            f'fill="{COLOURS[bar.kind]}" rx="2"><title>{escape(bar.label)}: '
            f"{bar.value:.1f} µs</title></rect>"
        )
        out.append(
            f'<text x="{LABEL_W + width + 6:.1f}" y="{y + 16}" fill="#212121">'
            f"{_fmt(bar.value)} µs</text>"
        )
    x, y = LABEL_W, height - 14
    for kind in (OURS, PEER, REFERENCE):
        if any(b.kind == kind for b in bars):
            out.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" '
                       f'fill="{COLOURS[kind]}"/>')  # fmt: skip
            out.append(f'<text x="{x + 17}" y="{y}" fill="#424242">{LEGEND[kind]}</text>')
            x += 40 + 8 * len(LEGEND[kind])
    out.append("</svg>")
    return "\n".join(out) + "\n"


# -- markdown -----------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    number = _num(value)
    if number is None:
        return NOTHING
    if number >= 100:
        return f"{number:,.0f}"
    return f"{number:.1f}" if number >= 10 else f"{number:.2f}"


def _when(stamp: str) -> str:
    """``2026-11-21T09:42:47+00:00`` → ``2026-11-21 09:42 UTC`` (anything else as is)."""
    try:
        moment = datetime.fromisoformat(stamp).astimezone(timezone.utc)
    except ValueError:
        return stamp
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _machine(env: dict[str, Any]) -> str:
    python = env.get("python", "?")
    impl = env.get("implementation", "CPython")
    platform = env.get("platform", env.get("machine", "?"))
    libs = ", ".join(
        f"{k} {v}" for k, v in env.items()
        if k not in ("python", "implementation", "machine", "platform")
    )  # fmt: skip
    return f"{impl} {python} on {platform}" + (f"; {libs}" if libs else "")


def markdown(sections: list[Section], problems: list[str]) -> str:
    lines = [
        START,
        "<!-- Generated by benchmarks/report.py from benchmarks/results/*.json; "
        "edit the script, not this part. -->",
        "",
    ]
    if problems:
        lines += ['!!! note "Missing results"', ""]
        lines += [f"    - {p}" for p in problems]
        lines.append("")
    goals = [(s, c) for s in sections for c in s.comparisons if c.target is not None]
    if goals:
        lines += ["### The goals from the issues", "",
                  "| benchmark | ours / theirs | ratio | goal | result |",
                  "|---|---|---:|---|---|"]  # fmt: skip
        for s, c in goals:
            result = "**met**" if c.met else "**not met**"
            lines.append(f"| {s.title} | {c.ours.label} / {c.theirs.label} | {c.ratio:.2f} {TIMES} "
                         f"| {c.goal or f'≤ {c.target:g} {TIMES}'} | {result} |")  # fmt: skip
        lines.append("")
    for s in sections:
        lines += [f"### {s.title}", ""]
        lines.append(f"Measured {_when(s.when)} with {_machine(s.environment)}.")
        if s.settings:
            lines.append(f"Settings: {s.settings}.")
        lines += ["", f"![{s.title}](images/bench-{s.name}.svg)", ""]
        lines.append("| " + " | ".join(["contestant", s.metric, *s.extra_columns]) + " |")
        lines.append("|---|---:|" + "---:|" * len(s.extra_columns))
        for b in s.bars:
            mark = "**" if b.kind == OURS else ""
            cells = [f"{mark}{b.label}{mark}", _fmt(b.value)]
            cells += [b.extra.get(c, NOTHING) for c in s.extra_columns]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        if s.comparisons:
            lines += ["| ours | µs | theirs | µs | ratio (ours / theirs) | goal | result |",
                      "|---|---:|---|---:|---:|---|---|"]  # fmt: skip
            for c in s.comparisons:
                goal = f"≤ {c.target:g} {TIMES}" if c.target is not None else ""
                result = {True: "**met**", False: "**not met**", None: ""}[c.met]
                lines.append(
                    f"| {c.ours.label} | {_fmt(c.ours.value)} | {c.theirs.label} | "
                    f"{_fmt(c.theirs.value)} | {c.ratio:.2f} {TIMES} | {goal} | {result} |"
                )
            lines.append("")
        lines += [*s.notes, ""] if s.notes else []
    lines.append(END)
    return "\n".join(lines)


def goal_lines(sections: list[Section]) -> list[str]:
    out = []
    for s in sections:
        for c in s.comparisons:
            if c.target is not None:
                state = "met" if c.met else "NOT met"
                out.append(f"{s.name}: {c.ours.label} / {c.theirs.label} = {c.ratio:.2f} "
                           f"(goal <= {c.target:g}): {state}")  # fmt: skip
    return out


def render(results: Path) -> tuple[dict[Path, str], str, list[str], list[Section]]:
    sections, problems = load_sections(results)
    files = {IMAGES / f"bench-{s.name}.svg": svg_chart(s) for s in sections}
    page = PAGE.read_text()
    if START not in page or END not in page:
        raise SystemExit(f"{PAGE} has no {START} ... {END} markers to fill in")
    head, _, rest = page.partition(START)
    _, _, tail = rest.partition(END)
    files[PAGE] = head + markdown(sections, problems) + tail
    return files, page, problems, sections


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of *.json")
    parser.add_argument("--check", action="store_true", help="exit 1 if docs are stale")
    args = parser.parse_args(argv)
    files, _, problems, sections = render(args.results)
    stale = [p for p, text in files.items() if not p.exists() or p.read_text() != text]
    if args.check:
        for path in stale:
            print(f"out of date: {path.relative_to(ROOT)}")
        return 1 if stale else 0
    IMAGES.mkdir(parents=True, exist_ok=True)
    for path in stale:
        path.write_text(text := files[path])
        print(f"wrote {path.relative_to(ROOT)} ({len(text):,} bytes)")
    for line in problems:
        print(f"note: {line}", file=sys.stderr)
    for line in goal_lines(sections):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
