"""The load-test report: HTML with plots, JSON with everything, Markdown for a change ticket.

Verdicts and their exit codes (also in docs/loadtests.md):

| verdict | exit | meaning |
|---|---:|---|
| PASS | 0 | every gate held and the run was valid |
| FAIL | 1 | a gate failed |
| INVALID | 1 | the run cannot be trusted (generator short of its target rate or CPU, users
  failed, records left) |
| ABORTED | 1 | the run stopped itself (abort_error_ratio, abort_on_breach) |
| INTERRUPTED | 130 | something outside stopped it: a signal (Ctrl-C, SIGTERM), a lost worker |

An interrupted run still cleans up and writes every report; it never says PASS.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from crmpulse.redact import redact

from .latency import PRECISION_NOTE
from .plots import line_chart

__all__ = ["EXIT_CODES", "capacity_summary", "verdict_of", "write_reports"]

EXIT_CODES = {"PASS": 0, "FAIL": 1, "INVALID": 1, "ABORTED": 1, "INTERRUPTED": 130}


def verdict_of(data: dict[str, Any]) -> str:
    if data.get("interrupted"):
        return "INTERRUPTED"
    if data.get("aborted"):
        return "ABORTED"
    if not data["validity"]["valid"]:
        return "INVALID"
    return "PASS" if data["passed"] else "FAIL"


def capacity_summary(capacity: dict[str, Any]) -> str:
    held, broken = capacity["highest_held_rps"], capacity["first_broken_rps"]
    text = "capacity: " + (f"every gate held up to {held:g} req/s" if held is not None
                           else "no rate held every gate")
    if broken is not None:
        text += f"; {broken:g} req/s broke: " + "; ".join(capacity["broken_by"][:3])
    if capacity["stopped"]:
        text += f" ({capacity['stopped']})"
    return text


def _happened(data: dict[str, Any]) -> list[str]:
    """What happened during the run, each with the time it happened, for people to read."""
    lines = []
    if data.get("interrupted"):
        lines.append(f"Interrupted: {data['interrupted']}, after {data['duration_s']:.0f} s of "
                     f"{data.get('planned_duration_s', data['duration_s']):.0f} s planned")
    for event in data.get("events", []):
        lines.append(f"at {event['t']:.0f} s: {event['event']}")
    for name, count in sorted(data.get("user_errors", {}).items()):
        lines.append(f"journey {name}: {count} user(s) failed at run time (counted as errors)")
    return lines


def _capacity_html(data: dict[str, Any]) -> str:
    if not data.get("capacity"):
        return ""
    rows = "".join(
        f"<tr><td>{st['rate']:g}</td><td>{st['achieved']:.1f}</td><td>{st['p95_ms']:.1f}</td>"
        f"<td>{st['error_ratio']:.2f}</td><td class='{'pass' if st['held'] else 'fail'}'>"
        f"{'held' if st['held'] else 'broke: ' + html.escape('; '.join(st['broken'][:2]))}</td></tr>"
        for st in data["capacity"]["steps"])
    return (f"<h2>Capacity</h2><p><b>{html.escape(capacity_summary(data['capacity']))}</b></p>"
            "<table><tr><th>rate req/s</th><th>reached</th><th>p95 ms</th><th>errors %</th>"
            f"<th>result</th></tr>{rows}</table>")


def write_reports(data: dict[str, Any], folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "report.json", "markdown": folder / "summary.md",
             "html": folder / "report.html"}
    # every secret the config resolved is masked, in whatever escaping each format uses
    paths["json"].write_text(redact(json.dumps(data, indent=2, default=str)), encoding="utf-8")
    paths["markdown"].write_text(redact(markdown(data)), encoding="utf-8")
    paths["html"].write_text(redact(html_report(data)), encoding="utf-8")
    return paths


def quota_lines(data: dict[str, Any]) -> list[str]:
    """One sentence per API quota: what the run spent, and what is left (loadtests/quota.py)."""
    lines = []
    for name, row in data.get("quota", {}).items():
        spent = "an unknown amount" if row["spent"] is None else f"{row['spent']:,.0f}"
        lines.append(f"API quota {name} ({row['window']}): {spent} spent during the run, "
                     f"{row['remaining_after']:,.0f} of {row['limit']:,.0f} left")
    return lines


def markdown(data: dict[str, Any]) -> str:
    s = data["summary"]
    lines = [f"# Load test {data['run_id']}: {verdict_of(data)}", "",
             f"- Target: `{data['target']}` ({data['base_url']}), profile `{data['profile']}`",
             f"- Shape: {data['shape']['kind']}, {data['duration_s']:.0f} s, peak "
             f"{data['shape']['peak_users']} users; {s['requests']:,} requests, "
             f"{s['rps']:.1f} req/s, {s['error_ratio']:.2f} % errors, p95 {s['p95_ms']:.0f} ms",
             f"- Records created {data['cleanup']['created']}, deleted "
             f"{data['cleanup']['deleted'] + data['cleanup']['swept']}, left {data['cleanup']['left']}"]
    if not data["validity"]["valid"]:
        lines.append("- **Invalid run:** " + "; ".join(data["validity"]["reasons"]))
    if data.get("aborted"):
        lines.append(f"- **Aborted:** {data['aborted']}")
    lines += [f"- {line}" for line in quota_lines(data)]
    lines += [f"- {line}" for line in _happened(data)]
    if data.get("capacity"):
        lines += [f"- **{capacity_summary(data['capacity'])}**", "",
                  "| step | rate req/s | reached | p50 ms | p95 ms | p99 ms | errors % | result |",
                  "|---:|---:|---:|---:|---:|---:|---:|---|"]
        lines += [f"| {i} | {st['rate']:g} | {st['achieved']:.1f} | {st['p50_ms']:.1f} | "
                  f"{st['p95_ms']:.1f} | {st['p99_ms']:.1f} | {st['error_ratio']:.2f} | "
                  f"{'held' if st['held'] else 'broke'} |"
                  for i, st in enumerate(data["capacity"]["steps"], 1)]
    lines += ["", "| gate | metric | threshold | actual | result |", "|---|---|---:|---:|---|"]
    for g in data["gates"]:
        unit = {"error_ratio": " %", "min_rps": " req/s"}.get(g["metric"], " s")
        lines.append(f"| {g['scope']} {g['name']} | {g['metric']} | {g['threshold']:g}{unit} | "
                     f"{g['actual']:.3f}{unit} | {'pass' if g['passed'] else '**FAIL**'} |")
    lines += ["", "| operation | requests | failures | p50 ms | p95 ms | p99 ms | req/s |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for name, op in sorted(data["operations"].items()):
        lines.append(f"| {name} | {op['requests']} | {op['failures']} | {op['p50_ms']:.0f} | "
                     f"{op['p95_ms']:.0f} | {op['p99_ms']:.0f} | {op['rps']:.2f} |")
    lines += ["", PRECISION_NOTE, "",
              f"Records created {data['cleanup']['created']}, deleted "
              f"{data['cleanup']['deleted'] + data['cleanup']['swept']}, left {data['cleanup']['left']}.", ""]
    return "\n".join(lines)


def html_report(data: dict[str, Any]) -> str:
    timeline = data["timeline"]
    verdict = verdict_of(data)
    color = {"PASS": "#1a7f37", "FAIL": "#cf222e", "INVALID": "#9a6700", "ABORTED": "#cf222e",
             "INTERRUPTED": "#9a6700"}[verdict]
    charts = [line_chart("Users and request rate", {
        "users": [(p["t"], p["users"]) for p in timeline],
        "achieved req/s": [(p["t"], p["rps"]) for p in timeline],
        **({"target req/s": [(p["t"], p["target_rps"]) for p in timeline if p["target_rps"]]}
           if any(p["target_rps"] for p in timeline) else {})}, "users, req/s"),
        line_chart("Errors and throttling", {
            "failures/s": [(p["t"], p["failures_per_s"]) for p in timeline],
            "throttled/s": [(p["t"], p["throttled_per_s"]) for p in timeline]}, "per second")]
    if data.get("capacity"):
        steps = sorted(data["capacity"]["steps"], key=lambda st: st["rate"])
        charts.insert(0, line_chart(
            "Capacity search: latency against request rate (the knee)",
            {q: [(st["rate"], st[f"{q}_ms"]) for st in steps] for q in ("p50", "p95", "p99")},
            "ms", x_unit=" req/s"))
        charts.insert(1, line_chart(
            "Capacity search: errors and achieved rate against request rate",
            {"errors %": [(st["rate"], st["error_ratio"]) for st in steps],
             "achieved req/s": [(st["rate"], st["achieved"]) for st in steps]}, "%, req/s",
            x_unit=" req/s"))
    gate_lines: dict[str, dict[str, float]] = {}
    for g in data["gates"]:
        if g["metric"] in ("p50", "p95", "p99") and g["scope"] in ("operation", "global"):
            key = g["name"] if g["scope"] == "operation" else "*"
            gate_lines.setdefault(key, {})[f"{g['metric']} gate"] = g["threshold"] * 1000
    for name in sorted(data["operations"]):
        series = {q: [(p["t"], p["ops"][name][q]) for p in timeline if name in p["ops"]]
                  for q in ("p50", "p95", "p99")}
        lines = {**gate_lines.get("*", {}), **gate_lines.get(name, {})}
        charts.append(line_chart(f"{name}: latency percentiles (10 s windows)", series, "ms", lines))
    rows = "".join(
        f"<tr><td>{html.escape(g['scope'])} {html.escape(g['name'])}</td><td>{g['metric']}</td>"
        f"<td>{g['threshold']:g}</td><td>{g['actual']:.3f}</td>"
        f"<td class='{'pass' if g['passed'] else 'fail'}'>{'pass' if g['passed'] else 'FAIL'}</td></tr>"
        for g in data["gates"])
    ops = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{o['requests']}</td><td>{o['failures']}</td>"
        f"<td>{o['p50_ms']:.0f}</td><td>{o['p95_ms']:.0f}</td><td>{o['p99_ms']:.0f}</td>"
        f"<td>{o['rps']:.2f}</td></tr>" for n, o in sorted(data["operations"].items()))
    c = data["cleanup"]
    invalid = "" if data["validity"]["valid"] else (
        "<p class='fail'>Invalid run: " + html.escape("; ".join(data["validity"]["reasons"])) + "</p>")
    aborted = f"<p class='fail'>Aborted: {html.escape(data['aborted'])}</p>" if data.get("aborted") else ""
    happened = "".join(f"<li>{html.escape(line)}</li>" for line in quota_lines(data) + _happened(data))
    if happened:
        aborted += f"<h2>What happened</h2><ul>{happened}</ul>"
    errors = "".join(f"<li>{html.escape(e['name'])}: {html.escape(e['error'])} "
                     f"({e['occurrences']})</li>" for e in data["errors"][:20])
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>crmpulse load test {html.escape(data['run_id'])}: {verdict}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:960px}}td,th{{padding:.25em .7em;
text-align:left;border-bottom:1px solid #eee}}.pass{{color:#1a7f37}}.fail{{color:#cf222e;
font-weight:bold}}h1 span{{color:{color}}}</style></head><body>
<h1>Load test {html.escape(data['run_id'])}: <span>{verdict}</span></h1>
<p>Target <b>{html.escape(data['target'])}</b> ({html.escape(data['base_url'])}), profile
{html.escape(data['profile'])}; shape {html.escape(data['shape']['kind'])}, {data['duration_s']:.0f} s,
peak {data['shape']['peak_users']} users; {data['summary']['requests']:,} requests at
{data['summary']['rps']:.1f} req/s, {data['summary']['error_ratio']:.2f} % errors.</p>{invalid}{aborted}
{_capacity_html(data)}
<h2>SLO gates</h2><table><tr><th>gate</th><th>metric</th><th>threshold</th><th>actual</th>
<th>result</th></tr>{rows}</table>
<h2>Over time</h2>{''.join(f'<div>{c}</div>' for c in charts)}
<h2>Operations</h2><table><tr><th>operation</th><th>requests</th><th>failures</th><th>p50 ms</th>
<th>p95 ms</th><th>p99 ms</th><th>req/s</th></tr>{ops}</table>
<h2>Errors</h2><ul>{errors or '<li>none</li>'}</ul>
<h2>Records</h2><p>Created {c['created']}, deleted by users {c['deleted']}, swept by marker
{c['swept']}, <b>left {c['left']}</b> (expected 0).</p>
<h2>How the figures were computed</h2><p>{html.escape(PRECISION_NOTE)}</p>
<p><b>Records created {c['created']}, deleted {c['deleted'] + c['swept']}, left {c['left']}.</b></p>
</body></html>"""
