"""``crmpulse report compare BASELINE CANDIDATE``: is this release slower than the last one?

Both runs' ``report.json`` carry their HDR histograms (every response time to 3
significant digits), so the comparison works on the distributions, not on rounded
summaries. The method, stated once and printed in every output:

- **Latency percentiles (p50, p95, p99)**: a distribution-free 95 % confidence interval
  for each run's percentile, from the order statistics of its histogram: with n
  responses, the q-quantile lies between the values at ranks ``n*q -/+ 1.96*sqrt(n*q*(1-q))``
  (the binomial interval, no assumption about the distribution's shape). A percentile
  has **regressed** when the candidate's interval lies entirely above the baseline's,
  the candidate's value exceeds the baseline's by more than the relative tolerance
  (default 10 %), and by more than an absolute floor (default 5 ms, so that 1.4 ms
  against 1.1 ms on a quiet test CRM is not a regression).
- **Error ratio**: a one-sided two-proportion z-test; a **regression** when the
  candidate's ratio is higher by more than the tolerance (default 1 percentage point)
  and z > 1.645 (95 %).
- **Throughput**: request counts are Poisson, so a rate's 95 % interval is
  ``(N ± 1.96·√N) / duration``; a **regression** when the candidate's upper bound is
  below the baseline's lower bound by more than the tolerance (default 10 %). It is
  only judged between runs with the same target rate or the same shape.

A difference that is not significant is reported as "within noise" even when the point
values differ; a significant one inside the tolerance is "changed, within tolerance".
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .latency import Entry, LatencyBook
from .plots import bar_chart

__all__ = ["Comparison", "Tolerances", "compare_runs", "load_run", "write_comparison"]

Z = 1.959964  # two-sided 95 %
Z_ONE_SIDED = 1.644854
METHOD = (
    "Percentiles: distribution-free 95 % confidence intervals from each run's HDR histogram "
    "(binomial order statistics); regressed when the candidate's interval lies above the "
    "baseline's and the increase passes both the relative tolerance and the absolute floor. "
    "Error ratio: one-sided two-proportion z-test at 95 % beyond the tolerance in percentage "
    "points. Throughput: Poisson 95 % intervals, regressed when the candidate's is below the "
    "baseline's by more than the tolerance.")


@dataclass(frozen=True)
class Tolerances:
    latency: float = 10.0  # percent
    latency_floor_ms: float = 5.0
    error_ratio: float = 1.0  # percentage points
    throughput: float = 10.0  # percent


@dataclass
class Finding:
    operation: str
    metric: str  # p50 | p95 | p99 | error_ratio | throughput
    baseline: float
    candidate: float
    baseline_interval: tuple[float, float]
    candidate_interval: tuple[float, float]
    verdict: str  # regressed | improved | changed, within tolerance | within noise

    @property
    def change(self) -> float:
        return (self.candidate / self.baseline - 1) * 100 if self.baseline else 0.0


@dataclass
class Comparison:
    baseline: str
    candidate: str
    findings: list[Finding] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # operations only one run has
    tolerances: Tolerances = field(default_factory=Tolerances)

    @property
    def regressions(self) -> list[Finding]:
        return [f for f in self.findings if f.verdict == "regressed"]


def load_run(folder: Path) -> dict[str, Any]:
    path = folder / "report.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read it ({exc.strerror})") from None
    except ValueError:
        raise ValueError(f"{path}: not a crmpulse report (invalid JSON)") from None
    if not isinstance(data, dict) or "histograms" not in data:
        raise ValueError(f"{path}: no histograms in it (a report from before crmpulse kept them?)")
    return data


def quantile_interval(entry: Entry, q: float) -> tuple[float, float]:
    """The 95 % distribution-free interval (ms) for the q-quantile (0-1) of ``entry``."""
    n = entry.requests
    if n == 0:
        return (0.0, 0.0)
    spread = Z * math.sqrt(n * q * (1 - q))
    low_rank, high_rank = n * q - spread, n * q + spread + 1
    # too few responses to bound the percentile on a side: that side is open, so a
    # handful of requests can never make a regression
    low = entry.percentile_ms(100 * low_rank / n) if low_rank >= 1 else 0.0
    high = entry.percentile_ms(100 * high_rank / n) if high_rank <= n else math.inf
    return (low, high)


def _latency(name: str, metric: str, q: float, a: Entry, b: Entry, tol: Tolerances) -> Finding:
    base, cand = a.percentile_ms(100 * q), b.percentile_ms(100 * q)
    ia, ib = quantile_interval(a, q), quantile_interval(b, q)
    slower = ib[0] > ia[1]
    faster = ib[1] < ia[0]
    beyond = cand > base * (1 + tol.latency / 100) and cand - base > tol.latency_floor_ms
    better = base > cand * (1 + tol.latency / 100) and base - cand > tol.latency_floor_ms
    verdict = ("regressed" if slower and beyond else "improved" if faster and better
               else "changed, within tolerance" if slower or faster else "within noise")
    return Finding(name, metric, base, cand, ia, ib, verdict)


def _errors(name: str, a: Entry, b: Entry, tol: Tolerances) -> Finding:
    pa, pb = a.failures / max(a.requests, 1), b.failures / max(b.requests, 1)
    pooled = (a.failures + b.failures) / max(a.requests + b.requests, 1)
    se = math.sqrt(pooled * (1 - pooled) * (1 / max(a.requests, 1) + 1 / max(b.requests, 1)))
    z = (pb - pa) / se if se > 0 else 0.0

    def interval(p: float, n: int) -> tuple[float, float]:
        half = Z * math.sqrt(p * (1 - p) / max(n, 1)) * 100
        return (max(0.0, p * 100 - half), min(100.0, p * 100 + half))

    beyond = (pb - pa) * 100 > tol.error_ratio
    verdict = ("regressed" if beyond and z > Z_ONE_SIDED else
               "improved" if (pa - pb) * 100 > tol.error_ratio and -z > Z_ONE_SIDED else
               "changed, within tolerance" if abs(z) > Z_ONE_SIDED else "within noise")
    return Finding(name, "error_ratio", pa * 100, pb * 100, interval(pa, a.requests),
                   interval(pb, b.requests), verdict)


def _throughput(name: str, a: Entry, b: Entry, da: float, db: float, tol: Tolerances) -> Finding:
    def interval(n: int, d: float) -> tuple[float, float]:
        half = Z * math.sqrt(n)
        return (max(0.0, (n - half) / d), (n + half) / d)

    ra, rb = a.requests / da, b.requests / db
    ia, ib = interval(a.requests, da), interval(b.requests, db)
    verdict = ("regressed" if ib[1] < ia[0] * (1 - tol.throughput / 100) else
               "improved" if ib[0] > ia[1] * (1 + tol.throughput / 100) else
               "changed, within tolerance" if ib[1] < ia[0] or ib[0] > ia[1] else "within noise")
    return Finding(name, "throughput", ra, rb, ia, ib, verdict)


def compare_runs(baseline: dict[str, Any], candidate: dict[str, Any],
                 tolerances: Tolerances | None = None) -> Comparison:
    tol = tolerances or Tolerances()
    result = Comparison(str(baseline.get("run_id")), str(candidate.get("run_id")), tolerances=tol)
    a, b = LatencyBook.decode(baseline["histograms"]), LatencyBook.decode(candidate["histograms"])
    ops_a, ops_b = a.of_kind("operation"), b.of_kind("operation")
    result.missing = sorted(set(ops_a) ^ set(ops_b))
    same_load = (baseline.get("shape") or {}).get("stages") == (candidate.get("shape") or {}).get("stages")
    da, db = max(float(baseline["duration_s"]), 1e-6), max(float(candidate["duration_s"]), 1e-6)
    for name in sorted(set(ops_a) & set(ops_b)):
        ea, eb = ops_a[name], ops_b[name]
        for metric, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            result.findings.append(_latency(name, metric, q, ea, eb, tol))
        result.findings.append(_errors(name, ea, eb, tol))
        if same_load:
            result.findings.append(_throughput(name, ea, eb, da, db, tol))
    return result


def markdown(c: Comparison) -> str:
    verdict = "REGRESSED" if c.regressions else "OK"
    lines = [f"# Load test comparison: {verdict}", "",
             f"Baseline `{c.baseline}`, candidate `{c.candidate}`. Tolerances: latency "
             f"+{c.tolerances.latency:g} % and +{c.tolerances.latency_floor_ms:g} ms, error ratio "
             f"+{c.tolerances.error_ratio:g} points, throughput -{c.tolerances.throughput:g} %.", ""]
    if c.regressions:
        lines += ["**Regressions:**", ""] + [
            f"- {f.operation} {f.metric}: {f.baseline:.3f} -> {f.candidate:.3f} ({f.change:+.1f} %)"
            for f in c.regressions] + [""]
    lines += ["| operation | metric | baseline | candidate | change | 95 % intervals | verdict |",
              "|---|---|---:|---:|---:|---|---|"]
    for f in c.findings:
        unit = {"error_ratio": " %", "throughput": " req/s"}.get(f.metric, " ms")
        lines.append(f"| {f.operation} | {f.metric} | {f.baseline:.3f}{unit} | {f.candidate:.3f}{unit} | "
                     f"{f.change:+.1f} % | {f.baseline_interval[0]:.3f}-{f.baseline_interval[1]:.3f} vs "
                     f"{f.candidate_interval[0]:.3f}-{f.candidate_interval[1]:.3f} | "
                     f"{'**regressed**' if f.verdict == 'regressed' else f.verdict} |")
    if c.missing:
        lines += ["", "Operations in only one run (not compared): " + ", ".join(c.missing)]
    lines += ["", "Method: " + METHOD, ""]
    return "\n".join(lines)


def html_report(c: Comparison) -> str:
    verdict = "REGRESSED" if c.regressions else "OK"
    color = "#cf222e" if c.regressions else "#1a7f37"
    charts = []
    for metric in ("p50", "p95", "p99"):
        rows = [(f.operation, f.baseline, f.candidate, f.verdict == "regressed")
                for f in c.findings if f.metric == metric]
        charts.append(bar_chart(f"{metric} by operation (ms): baseline vs candidate", rows,
                                ("baseline", "candidate")))
    table = "".join(
        f"<tr><td>{html.escape(f.operation)}</td><td>{f.metric}</td><td>{f.baseline:.3f}</td>"
        f"<td>{f.candidate:.3f}</td><td>{f.change:+.1f} %</td>"
        f"<td class='{'fail' if f.verdict == 'regressed' else ''}'>{html.escape(f.verdict)}</td></tr>"
        for f in c.findings)
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>crmpulse comparison: {verdict}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1000px}}td,th{{padding:.25em .7em;
text-align:left;border-bottom:1px solid #eee}}.fail{{color:#cf222e;font-weight:bold}}
h1 span{{color:{color}}}</style></head><body>
<h1>Load test comparison: <span>{verdict}</span></h1>
<p>Baseline <b>{html.escape(c.baseline)}</b>, candidate <b>{html.escape(c.candidate)}</b>.</p>
{''.join(f'<div>{chart}</div>' for chart in charts)}
<h2>Every figure</h2><table><tr><th>operation</th><th>metric</th><th>baseline</th><th>candidate</th>
<th>change</th><th>verdict</th></tr>{table}</table>
<h2>Method</h2><p>{html.escape(METHOD)}</p></body></html>"""


def _finite(value: Any) -> Any:
    """JSON has no infinity: an open interval's side is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def write_comparison(c: Comparison, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"html": folder / "compare.html", "markdown": folder / "compare.md",
             "json": folder / "compare.json"}
    paths["html"].write_text(html_report(c), encoding="utf-8")
    paths["markdown"].write_text(markdown(c), encoding="utf-8")
    paths["json"].write_text(json.dumps({
        "baseline": c.baseline, "candidate": c.candidate, "regressed": bool(c.regressions),
        "tolerances": asdict(c.tolerances), "missing": c.missing, "method": METHOD,
        "findings": [_finite(asdict(f)) | {"change_percent": f.change} for f in c.findings]},
        indent=2, allow_nan=False),
        encoding="utf-8")
    return paths
