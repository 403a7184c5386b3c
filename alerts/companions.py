"""Companion alerts: what burn rates miss, each with the scenario that proves its timing.

A burn-rate alert needs traffic and an SLO; these watch what has neither: probes that
stopped reporting, a sync that stopped, lost canaries, a broken protection, a
certificate about to expire or not verifying. Each companion is one entry of
:data:`COMPANIONS`: how to build its rule from the config, and the promtool
scenarios that show it silent just before the delay its description states and
firing at it. ``crmpulse alerts`` writes those scenarios to
``tests/companions.test.yml``; a test reads the stated delay back and compares it
with the one promtool measured.

To add one (an API-quota forecast, say):
append a :class:`Companion` here, write ``runbooks/<Name>.md``, and give it at least
one :class:`Scenario`; the tests pick all three up.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crmpulse import ConfigError, Problem
from crmpulse import contract as c
from crmpulse.config import access_paths
from crmpulse.units import format_duration

from .rules import AlertRule, Context

__all__ = ["ALERT_NAMES", "BURN_ALERTS", "COMPANIONS", "Companion", "Scenario"]

Values = list[float | str | None]  # per minute; "stale" writes a staleness marker, None nothing


@dataclass
class Scenario:
    """Per-minute input series, the minute the fault starts, and when the alert must fire."""

    title: str
    series: dict[str, Values]
    start: int
    fires_at: int  # first minute it must be firing
    labels: dict[str, str]  # the firing alert's labels, severity included
    silent_at: int = -1  # last minute it must still be silent (default: one before fires_at)
    #: series whose values are Unix times, written for promtool's clock (minute m is 60 m
    #: seconds); a test replaying the scenario at another time shifts them
    times: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.silent_at < 0:
            self.silent_at = self.fires_at - 1

    @property
    def minutes(self) -> int:
        return self.fires_at + 5


@dataclass(frozen=True)
class Companion:
    name: str
    build: Callable[[Context], AlertRule | None]
    scenarios: Callable[[Context, AlertRule], list[Scenario]] = field(repr=False)


HISTORY = 30  # healthy minutes before a scenario's fault


def fires(delay: float, trigger: str) -> str:
    """The sentence every companion's description carries; a test reads the delay back from it."""
    if delay == 0:
        return f"It fires at the first evaluation after {trigger}."
    return f"It fires {format_duration(delay)} after {trigger}."


def _minutes(seconds: float) -> int:
    return math.ceil(seconds / 60 - 1e-9)


def _labels(rule: AlertRule, **series: str) -> dict[str, str]:
    return {"severity": rule.severity, **rule.labels, **series}


# -- no probe results --------------------------------------------------------------------


def _probes_absent(ctx: Context) -> AlertRule | None:
    config = ctx.loaded.config
    if not config.probes.checks:
        return None
    window = config.alerting.absent_for
    shortest = min(check.interval for check in config.probes.checks)
    if window < 2 * shortest:
        raise ConfigError([Problem(str(ctx.loaded.path), 0, "alerting.absent_for", (
            f"expected at least twice the shortest check interval ({format_duration(2 * shortest)}), "
            f"got {format_duration(window)}: a quiet window between two runs would page"))])
    if ctx.compress > 1:  # compressed time (crmpulse stack): still at least four check runs
        window = max(window, 4 * shortest * ctx.compress)
    t, w = f'target="{ctx.target}"', ctx.w(window)
    runs = c.CHECK_RUNS.series
    link, values = ctx.link(c.PANEL_CHECK_STATUS, max(3600.0, 2 * window))
    return AlertRule(
        name="CrmProbesAbsent",
        # no sample at all (the exporter is gone) or counters that stopped (it is stuck)
        expr=f"absent_over_time({runs}{{{t}}}[{w}]) or sum by (target) (increase({runs}{{{t}}}[{w}])) == 0",
        severity="critical",
        summary=f"No probe results from the CRM target {ctx.target} for {format_duration(window)}: "
                "its SLOs cannot be judged",
        description=("{{ $labels.target }}: no crmpulse check has completed a run for "
                     f"{format_duration(window)}: the exporter is down, not scraped, or stuck. "
                     "Burn-rate alerts cannot fire while this lasts (no events, no error ratio). "
                     f"{fires(window, 'the last check result')} Check first: is the exporter up "
                     f"(`up` of its scrape job) and does its /metrics show {runs} increasing; the "
                     f"{c.PANEL_CHECK_STATUS.title} panel of the CRM overview."),
        runbook_url=ctx.runbook("CrmProbesAbsent"), labels={"target": ctx.target}, values=values,
        dashboard_url=link, panel=c.PANEL_CHECK_STATUS, delay=window)


def _probes_absent_scenarios(ctx: Context, rule: AlertRule) -> list[Scenario]:
    name = f'{c.CHECK_RUNS.series}{{target="{ctx.target}",check="{ctx.loaded.config.probes.checks[0].name}"}}'
    start, delay = HISTORY, _minutes(rule.delay)
    stuck: Values = [2.0 * min(m, start) for m in range(start + delay + 6)]
    gone: Values = [2.0 * m if m <= start else None for m in range(start + delay + 7)]
    gone[start + 1] = "stale"  # what Prometheus writes when a scrape fails
    labels = _labels(rule)
    return [Scenario("the exporter is stuck: counters stop", {name: stuck}, start, start + delay, labels),
            # the sample at the window's edge still counts: one evaluation later
            Scenario("the exporter is gone: series go stale", {name: gone}, start, start + delay + 1,
                     labels, silent_at=start + delay - 1)]


def _checks_not_running(ctx: Context) -> AlertRule | None:
    config = ctx.loaded.config
    if not config.probes.checks and not config.probes.sync:
        return None
    window = config.alerting.absent_for
    t = f'target="{ctx.target}"'

    def running(metric: c.Metric) -> str:  # each exporter once, however many jobs scrape it
        return f"sum by (target) (max by (target, instance) ({metric.series}{{{t}}}))"

    def configured(metric: c.Metric) -> str:  # every shard holds the whole config
        return f"max by (target) ({metric.series}{{{t}}})"

    total = f"{configured(c.CHECKS_CONFIGURED)} + {configured(c.SYNC_PAIRS_CONFIGURED)}"
    link, values = ctx.link(c.PANEL_CHECKS_RUNNING, max(3600.0, 2 * window))
    return AlertRule(
        name="CrmChecksNotRunning",
        # What runs adds up over shards (each runs its share of checks and sync pairs); what
        # is configured is the whole config on every shard, so its max. A shard that is down
        # takes its series with it and the sum drops; all of them down leaves nothing to
        # compare, which CrmProbesAbsent covers. The `for` rides out reloads and restarts
        # (docs/probes.md: a rollout must take less than absent_for).
        expr=(f"({running(c.CHECKS_RUNNING)} + {running(c.SYNC_PAIRS_RUNNING)}) < ({total})"),
        for_=ctx.seconds(window), severity="critical",
        summary=('Only [[value|printf "%.0f"]] of [[configured|printf "%.0f"]] crmpulse checks and '
                 f"sync pairs of the CRM target {ctx.target} are running: a probe shard is down"),
        description=("{{ $labels.target }}: fewer checks and sync pairs are running on all "
                     "exporters together than the config holds: an exporter shard is down or not "
                     "scraped, a check's schedule or a pair's loop died, or the shards hold "
                     "different configs (a reload failed on one). What is not running is "
                     "unwatched; CrmProbesAbsent stays silent while other shards report, and a "
                     "missing pair's lag is not there for CrmSyncStalled. "
                     f"{fires(window, 'the shard stops')} Check first: the "
                     f"{c.PANEL_CHECKS_RUNNING.title} panel of the exporter dashboard, then "
                     f"`{c.CHECKS_RUNNING.series}` and `{c.SYNC_PAIRS_RUNNING.series}` by instance "
                     "(the shard missing or short) and `up` of the probe scrape job."),
        runbook_url=ctx.runbook("CrmChecksNotRunning"), labels={"target": ctx.target},
        values={**values, "configured": total}, dashboard_url=link,
        panel=c.PANEL_CHECKS_RUNNING, delay=window)


def _checks_not_running_scenarios(ctx: Context, rule: AlertRule) -> list[Scenario]:
    start, delay = HISTORY, _minutes(rule.for_)
    minutes = range(start + delay + 6)

    def shards(share: list[tuple[float, float]], gone: int | None, short: float = 0.0) -> dict[str, Values]:
        """Series of exporters running (checks, pairs) each, of 30 checks and 3 pairs;
        ``gone`` stops reporting at ``start``, or with one exporter it runs ``short`` fewer."""
        series: dict[str, Values] = {}
        for i, (checks, pairs) in enumerate(share):
            labels = f'target="{ctx.target}",instance="probe-{i}:9465"'
            for metric, value in ((c.CHECKS_CONFIGURED, 30.0), (c.SYNC_PAIRS_CONFIGURED, 3.0),
                                  (c.CHECKS_RUNNING, checks), (c.SYNC_PAIRS_RUNNING, pairs)):
                later: float | str | None = value
                if i == gone:
                    later = None
                elif metric is c.CHECKS_RUNNING:
                    later = value - short
                series[f"{metric.series}{{{labels}}}"] = [
                    value if m < start else "stale" if m == start and later is None else later
                    for m in minutes]
        return series

    labels = _labels(rule)
    return [Scenario("one of three shards goes down", shards([(10, 1), (10, 1), (10, 1)], 2),
                     start, start + delay, labels),
            Scenario("a shard that runs only a sync pair goes down",
                     shards([(15, 1), (15, 1), (0, 1)], 2), start, start + delay, labels),
            Scenario("a check's schedule dies", shards([(30, 3)], None, short=1),
                     start, start + delay, labels)]


# -- sync ------------------------------------------------------------------------------------


def _sync_threshold(ctx: Context) -> float:
    thresholds = [s.slo.threshold or 0.0 for s in ctx.specs if s.slo.kind == "sync_lag"]
    return min(thresholds, default=300.0)


def _sync_stalled(ctx: Context) -> AlertRule | None:
    config = ctx.loaded.config
    if not config.probes.sync:
        return None
    threshold, stall_for = _sync_threshold(ctx), config.alerting.stall_for
    link, values = ctx.link(c.PANEL_SYNC_LAG, max(3600.0, 4 * (threshold + stall_for)))
    return AlertRule(
        name="CrmSyncStalled",
        expr=f'max by (target, pair) ({c.SYNC_LAG.series}{{target="{ctx.target}"}}) > {threshold:g}',
        for_=ctx.seconds(stall_for), severity="critical",
        summary="CRM data is not reaching the other side: sync pair {{ $labels.pair }} lags "
                '[[value|humanizeDuration]]',
        description=("{{ $labels.target }}: sync pair {{ $labels.pair }} has lagged more than "
                     f"{format_duration(threshold)} for {format_duration(stall_for)}; records written "
                     "in the CRM are not visible where they are needed. The lag keeps growing while "
                     "a written record stays unseen, even past its SLA. "
                     f"{fires(threshold + stall_for, 'the sync stops')} Check first: the "
                     f"{c.PANEL_SYNC_LAG.title} panel of the CRM overview, then the sync worker or "
                     "queue between the CRM and the other side."),
        runbook_url=ctx.runbook("CrmSyncStalled"), values=values, dashboard_url=link,
        panel=c.PANEL_SYNC_LAG, delay=threshold + stall_for)


def _sync_stalled_scenarios(ctx: Context, rule: AlertRule) -> list[Scenario]:
    pair = ctx.loaded.config.probes.sync[0].name
    name = f'{c.SYNC_LAG.series}{{target="{ctx.target}",pair="{pair}"}}'
    threshold = _sync_threshold(ctx)
    start = HISTORY
    above = math.floor(threshold / 60) + 1  # first minute the lag (60 s per minute) exceeds it
    at = start + above + _minutes(rule.for_)
    lag: Values = [1.0 if m < start else 60.0 * (m - start) for m in range(at + 6)]
    return [Scenario("the sync stops: the lag grows", {name: lag}, start, at,
                     _labels(rule, target=ctx.target, pair=pair))]


def _canaries_lost(ctx: Context) -> AlertRule | None:
    if not ctx.loaded.config.probes.sync:
        return None
    link, values = ctx.link(c.PANEL_SYNC_LAG, 3600.0)
    return AlertRule(
        name="CrmCanariesLost",
        expr=(f"sum by (target, pair) (increase({c.SYNC_LOST.series}{{target=\"{ctx.target}\"}}"
              f"[{ctx.w(900)}])) > 0"),
        severity="warning",
        summary="CRM sync canaries never became visible: sync pair {{ $labels.pair }}",
        description=("{{ $labels.target }}: sync pair {{ $labels.pair }} lost canaries in the last "
                     "15 minutes: records did not reach the other side within the SLA. "
                     f"{fires(0, 'a lost canary is scraped')} Check first: the "
                     f"{c.PANEL_SYNC_LAG.title} panel of the CRM overview, and whether later "
                     "canaries arrive (a dropped record) or none do (a stall)."),
        runbook_url=ctx.runbook("CrmCanariesLost"), values=values, dashboard_url=link,
        panel=c.PANEL_SYNC_LAG)


def _canaries_lost_scenarios(ctx: Context, rule: AlertRule) -> list[Scenario]:
    pair = ctx.loaded.config.probes.sync[0].name
    name = f'{c.SYNC_LOST.series}{{target="{ctx.target}",pair="{pair}"}}'
    start = HISTORY
    lost: Values = [0.0 if m < start else 1.0 for m in range(start + 6)]
    return [Scenario("a canary is lost", {name: lost}, start, start,
                     _labels(rule, target=ctx.target, pair=pair))]


# -- protections and certificates -------------------------------------------------------------


def _kinds(ctx: Context) -> dict[str, str]:
    """Check kind -> the first check of that kind."""
    out: dict[str, str] = {}
    for check in ctx.loaded.config.probes.checks:
        out.setdefault(check.kind, check.name)
    return out


def _protection_broken(ctx: Context) -> AlertRule | None:
    if "protection" not in _kinds(ctx):
        return None
    link, values = ctx.link(c.PANEL_PROTECTIONS, 3600.0)
    return AlertRule(
        name="CrmProtectionBroken",
        expr=f'{c.PROTECTION_HOLDS.series}{{target="{ctx.target}"}} == 0', severity="critical",
        summary="A CRM protection no longer holds: {{ $labels.protection }}",
        description=("{{ $labels.target }}: protection {{ $labels.protection }} checked by "
                     "{{ $labels.check }} is broken (for require_auth: the CRM answers without "
                     f"valid credentials). {fires(0, 'the check finds it broken')} Check first: "
                     f"the {c.PANEL_PROTECTIONS.title} panel of the CRM overview, and the last "
                     "change to the CRM's auth or gateway configuration."),
        runbook_url=ctx.runbook("CrmProtectionBroken"), values=values, dashboard_url=link,
        panel=c.PANEL_PROTECTIONS)


def _protection_scenarios(ctx: Context, rule: AlertRule) -> list[Scenario]:
    check = _kinds(ctx)["protection"]
    series = {"check": check, "protection": "require_auth"}
    name = (f'{c.PROTECTION_HOLDS.series}{{target="{ctx.target}",check="{check}",'
            'protection="require_auth"}')
    start = HISTORY
    holds: Values = [1.0 if m < start else 0.0 for m in range(start + 6)]
    return [Scenario("auth is no longer enforced", {name: holds}, start, start,
                     _labels(rule, target=ctx.target, **series))]


def _expiring(name: str, days: int, severity: str) -> Callable[[Context], AlertRule | None]:
    def build(ctx: Context) -> AlertRule | None:
        if "tls" not in _kinds(ctx):
            return None
        link, values = ctx.link(c.PANEL_CERT_EXPIRY, 86400.0)
        return AlertRule(
            name=name, expr=f'{c.TLS_EXPIRY.series}{{target="{ctx.target}"}} - time() < {days} * 86400',
            severity=severity,
            summary=f"The CRM's TLS certificate expires in less than {days} days: "
                    "[[value|humanizeDuration]] left",
            description=("{{ $labels.target }}: the certificate checked by {{ $labels.check }} "
                         f"expires within {days} days; clients will refuse the CRM after that. "
                         f"{fires(0, f'it is less than {days} days from expiry')} Check first: the "
                         f"{c.PANEL_CERT_EXPIRY.title} panel of the CRM overview, and whether "
                         "automatic renewal ran."),
            runbook_url=ctx.runbook(name), values=values, dashboard_url=link, panel=c.PANEL_CERT_EXPIRY)
    return build


def _expiring_scenarios(days: int) -> Callable[[Context, AlertRule], list[Scenario]]:
    def scenarios(ctx: Context, rule: AlertRule) -> list[Scenario]:
        check = _kinds(ctx)["tls"]
        name = f'{c.TLS_EXPIRY.series}{{target="{ctx.target}",check="{check}"}}'
        start = HISTORY
        # time() is 60 x the minute in promtool: this expiry crosses the line at `start`
        expiry = days * 86400.0 + start * 60 - 30
        return [Scenario(f"{days} days before expiry", {name: [expiry] * (start + 6)}, start, start,
                         _labels(rule, target=ctx.target, check=check), times=(name,))]
    return scenarios


def _certificate_invalid(ctx: Context) -> AlertRule | None:
    if "tls" not in _kinds(ctx):
        return None
    link, values = ctx.link(c.PANEL_CERT_CHAIN, 3600.0)
    return AlertRule(
        name="CrmCertificateInvalid", expr=f'{c.TLS_CHAIN_VALID.series}{{target="{ctx.target}"}} == 0',
        for_=ctx.seconds(300), severity="critical",
        summary="The CRM's TLS certificate chain does not verify",
        description=("{{ $labels.target }}: the certificate served to {{ $labels.check }} does "
                     "not verify against the trust store (self-signed, wrong host, missing "
                     f"intermediate or expired). {fires(300, 'the chain first fails to verify')} "
                     f"Check first: the {c.PANEL_CERT_CHAIN.title} panel of the CRM overview, and "
                     "the certificate the CRM serves now (openssl s_client)."),
        runbook_url=ctx.runbook("CrmCertificateInvalid"), values=values, dashboard_url=link,
        panel=c.PANEL_CERT_CHAIN, delay=300.0)


def _certificate_invalid_scenarios(ctx: Context, rule: AlertRule) -> list[Scenario]:
    check = _kinds(ctx)["tls"]
    name = f'{c.TLS_CHAIN_VALID.series}{{target="{ctx.target}",check="{check}"}}'
    start = HISTORY
    at = start + _minutes(rule.delay)
    valid: Values = [1.0 if m < start else 0.0 for m in range(at + 6)]
    return [Scenario("the chain stops verifying", {name: valid}, start, at,
                     _labels(rule, target=ctx.target, check=check))]


# -- access ------------------------------------------------------------------------------------
# One failed run is enough: a record another tenant can read, or a card number in an answer,
# is an incident the first time, not an error budget to spend. Pages for data reaching the
# wrong people now (isolation, role scope, exposure); tickets for defences that need an
# attacker first (a revoked token still accepted, a login that never locks).

_ACCESS = {
    "isolation": ("CrmTenantIsolationBroken", "critical", c.PANEL_ACCESS,
                  "Another tenant's credential reads this CRM's records: {{ $labels.path }} leaks",
                  "a record the check created is visible to another tenant's credential on read path "
                  "{{ $labels.path }} (check {{ $labels.check }}): customer data crosses tenants",
                  "the run's message on the probe's landing page (which credential, which path), then "
                  "the last change to that path's ownership or tenant filter"),
    "role_scope": ("CrmRoleScopeBroken", "critical", c.PANEL_ACCESS,
                   "A restricted CRM credential is allowed more than its role: {{ $labels.path }}",
                   "the restricted credential of check {{ $labels.check }} was allowed "
                   "{{ $labels.path }} (an operation it must be refused, or a hidden field): a role "
                   "reads or changes what it should not",
                   "the run's message (which operation or field), then the last change to roles, "
                   "permission sets or field-level security"),
    "exposure": ("CrmPersonalDataExposed", "critical", c.PANEL_EXPOSURE,
                 "The CRM answers with personal data it must not show: {{ $labels.path }}",
                 "answers of {{ $labels.path }} to the credential of check {{ $labels.check }} hold "
                 "personal data beyond what the config allows (card numbers, IBANs, national ids, "
                 "contacts the config does not expect)",
                 "the Exposed personal data panel (which detector, which read), then the last change "
                 "to serializers, API versions or field-level security"),
    "revocation": ("CrmRevokedTokenAccepted", "warning", c.PANEL_ACCESS,
                   "A revoked CRM token still works: {{ $labels.check }}",
                   "a token that was revoked (path {{ $labels.path }}: revoke, one the check revoked; "
                   "revoked, one the config names as revoked) is still accepted: a leaked credential "
                   "cannot be cut off",
                   "the run's message (how long it stayed valid), then the CRM's token cache or "
                   "session store, and whether revocation reaches every API node"),
    "bruteforce": ("CrmLoginThrottleMissing", "warning", c.PANEL_ACCESS,
                   "The CRM no longer slows down password guessing: {{ $labels.check }}",
                   "wrong passwords against the canary account of check {{ $labels.check }} were "
                   "neither throttled nor locked it: password guessing is unlimited",
                   "the run's message (how many attempts), then the identity provider's lockout and "
                   "rate-limit policy"),
}


def _access_check(ctx: Context, kind: str) -> Any:
    return next((check for check in ctx.loaded.config.probes.checks if check.kind == kind), None)


def _access_alert(kind: str) -> Callable[[Context], AlertRule | None]:
    name, severity, panel, summary, means, first = _ACCESS[kind]

    def build(ctx: Context) -> AlertRule | None:
        if _access_check(ctx, kind) is None:
            return None
        link, values = ctx.link(panel, 3600.0)
        return AlertRule(
            name=name, expr=f'{c.ACCESS_HOLDS.series}{{target="{ctx.target}",kind="{kind}"}} == 0',
            severity=severity, summary=summary,
            description=(f"{{{{ $labels.target }}}}: {means}. {fires(0, 'a run finds it broken')} "
                         f"Check first: {first}; the {panel.title} panel of the CRM overview."),
            runbook_url=ctx.runbook(name), values=values, dashboard_url=link, panel=panel)
    return build


def _access_scenarios(kind: str) -> Callable[[Context, AlertRule], list[Scenario]]:
    def scenarios(ctx: Context, rule: AlertRule) -> list[Scenario]:
        check = _access_check(ctx, kind)
        path = access_paths(check)[0]
        labels = {"check": check.name, "kind": kind, "path": path}
        name = (f'{c.ACCESS_HOLDS.series}{{target="{ctx.target}",check="{check.name}",'
                f'kind="{kind}",path="{path}"}}')
        start = HISTORY
        holds: Values = [1.0 if m < start else 0.0 for m in range(start + 6)]
        return [Scenario(f"one {kind} run finds it broken", {name: holds}, start, start,
                         _labels(rule, target=ctx.target, **labels))]
    return scenarios


# -- webhook subscriptions and deliveries ----------------------------------------------------

SUBSCRIPTION_FAILING_FOR = 600.0


def _webhook_pair(ctx: Context) -> Any:
    return next((p for p in ctx.loaded.config.probes.sync if p.mode == "webhook"), None)


def _subscription_failing(ctx: Context) -> AlertRule | None:
    if _webhook_pair(ctx) is None:
        return None
    link, values = ctx.link(c.PANEL_SYNC_LAG, 3600.0)
    held = SUBSCRIPTION_FAILING_FOR
    return AlertRule(
        name="CrmWebhookSubscriptionFailing",
        expr=(f'{c.SYNC_SUBSCRIPTION.series}{{target="{ctx.target}",state=~"auth_failed|failed"}} '
              "== 1"),
        for_=ctx.seconds(held), severity="warning",
        summary="crmpulse cannot subscribe to the CRM's webhooks: pair {{ $labels.pair }} is "
                "{{ $labels.state }}",
        description=("{{ $labels.target }}: the webhook subscription of sync pair {{ $labels.pair }} "
                     f"has been {{{{ $labels.state }}}} for {format_duration(held)} (auth_failed: our "
                     "credential may not subscribe; failed: the CRM refused the subscription), so the "
                     "pair writes no records and measures nothing. "
                     f"{fires(held, 'the subscription is first refused')} Check first: the probe's log "
                     "line for the refusal (it names the status), the credential's scopes or "
                     f"permissions for webhooks; the {c.PANEL_SYNC_LAG.title} panel of the CRM overview."),
        runbook_url=ctx.runbook("CrmWebhookSubscriptionFailing"), values=values,
        dashboard_url=link, panel=c.PANEL_SYNC_LAG, delay=held)


def _subscription_scenarios(ctx: Context, rule: AlertRule) -> list[Scenario]:
    pair = _webhook_pair(ctx).name
    start = HISTORY
    at = start + _minutes(rule.delay)
    series: dict[str, Values] = {}
    for state in c.SUBSCRIPTION_STATES:
        name = f'{c.SYNC_SUBSCRIPTION.series}{{target="{ctx.target}",pair="{pair}",state="{state}"}}'
        before = 1.0 if state == "subscribed" else 0.0
        after = 1.0 if state == "auth_failed" else 0.0
        series[name] = [before if m < start else after for m in range(at + 6)]
    return [Scenario("our credential may not subscribe", series, start, at,
                     _labels(rule, target=ctx.target, pair=pair, state="auth_failed"))]


def _deliveries_rejected(ctx: Context) -> AlertRule | None:
    if _webhook_pair(ctx) is None:
        return None
    link, values = ctx.link(c.PANEL_SYNC_LAG, 3600.0)
    return AlertRule(
        name="CrmWebhookDeliveriesRejected",
        expr=(f"sum by (target, pair) (increase({c.SYNC_WEBHOOK_REJECTED.series}"
              f'{{target="{ctx.target}"}}[{ctx.w(900)}])) > 0'),
        severity="warning",
        summary="Webhook deliveries that do not verify: sync pair {{ $labels.pair }}",
        description=("{{ $labels.target }}: the probe's webhook receiver for sync pair "
                     "{{ $labels.pair }} refused deliveries in the last 15 minutes (signature "
                     "missing, malformed or not matching): forged deliveries, or a signing secret "
                     "out of sync between the CRM and crmpulse. "
                     f"{fires(0, 'a refused delivery is scraped')} Check first: "
                     f"`sum by (reason) (increase({c.SYNC_WEBHOOK_REJECTED.series}[1h]))` (mismatch: "
                     "the secret; missing: an unsigned sender), then who sends to the receiver; the "
                     f"{c.PANEL_SYNC_LAG.title} panel of the CRM overview."),
        runbook_url=ctx.runbook("CrmWebhookDeliveriesRejected"), values=values,
        dashboard_url=link, panel=c.PANEL_SYNC_LAG)


def _rejected_scenarios(ctx: Context, rule: AlertRule) -> list[Scenario]:
    pair = _webhook_pair(ctx).name
    name = (f'{c.SYNC_WEBHOOK_REJECTED.series}{{target="{ctx.target}",pair="{pair}",'
            'reason="mismatch"}')
    start = HISTORY
    rejected: Values = [0.0 if m < start else 1.0 for m in range(start + 6)]
    return [Scenario("a delivery with a wrong signature", {name: rejected}, start, start,
                     _labels(rule, target=ctx.target, pair=pair))]
# -- API quota ---------------------------------------------------------------------------------

#: How far back the usage rate is measured, and how long a forecast must hold before a ticket.
QUOTA_RATE_WINDOW = 1800.0
QUOTA_FOR = 300.0


def _quota_exhaustion(ctx: Context) -> AlertRule | None:
    if not ctx.loaded.profile.quota:
        return None
    t = f'target="{ctx.target}"'
    used, limit = f"{c.API_QUOTA_USED.series}{{{t}}}", f"{c.API_QUOTA_LIMIT.series}{{{t}}}"
    reset, window = f"{c.API_QUOTA_RESET.series}{{{t}}}", f"{c.API_QUOTA_WINDOW.series}{{{t}}}"
    link, values = ctx.link(c.PANEL_API_QUOTA, 6 * 3600.0)
    return AlertRule(
        name="CrmApiQuotaExhaustion",
        # time to exhaustion at the current rate (a falling count never runs out), against the
        # time to the reset the CRM names, else the quota's documented window
        expr=(f"({limit} - {used}) / clamp_min(deriv({used}[{ctx.w(QUOTA_RATE_WINDOW)}]), 0)"
              f" < ({reset} - time() or {window})"),
        for_=ctx.seconds(QUOTA_FOR), severity="warning",
        summary="The CRM's API quota {{ $labels.quota }} runs out in [[value|humanizeDuration]] "
                "at the current rate, before it resets",
        description=("{{ $labels.target }}: at the rate of the last "
                     f"{format_duration(QUOTA_RATE_WINDOW)}, API quota {{{{ $labels.quota }}}} "
                     "(window {{ $labels.window }}) is spent before its window resets; once it is, "
                     "the CRM refuses every integration that shares it until the reset. "
                     f"{fires(QUOTA_FOR, 'the rate first forecasts exhaustion before the reset')} "
                     f"Check first: the {c.PANEL_API_QUOTA.title} panel of the CRM overview, then "
                     "which client is spending (a load test, a runaway sync, a retry loop)."),
        runbook_url=ctx.runbook("CrmApiQuotaExhaustion"), values=values, dashboard_url=link,
        panel=c.PANEL_API_QUOTA, delay=QUOTA_FOR)


def _quota_exhaustion_scenarios(ctx: Context, rule: AlertRule) -> list[Scenario]:
    spec = ctx.loaded.profile.quota[0]
    window = format_duration(spec.window) if spec.window else "unknown"
    labels = f'target="{ctx.target}",quota="{spec.name}",window="{window}"'
    start, at = HISTORY, HISTORY + _minutes(rule.delay)
    minutes = range(at + 6)
    # a runaway client spends 12 % of a 100,000 quota a minute from `start`: the rate over the
    # last half hour forecasts exhaustion within the day from its first minute
    used: Values = [0.0 if m < start else 12000.0 * (m - start + 1) for m in minutes]
    limit: Values = [100000.0 for _ in minutes]
    window_seconds: Values = [86400.0 for _ in minutes]
    series = {f"{c.API_QUOTA_USED.series}{{{labels}}}": used,
              f"{c.API_QUOTA_LIMIT.series}{{{labels}}}": limit,
              f"{c.API_QUOTA_WINDOW.series}{{{labels}}}": window_seconds}
    return [Scenario("a runaway client spends the daily quota", series, start, at,
                     _labels(rule, target=ctx.target, quota=spec.name, window=window))]


COMPANIONS = (
    Companion("CrmProbesAbsent", _probes_absent, _probes_absent_scenarios),
    Companion("CrmChecksNotRunning", _checks_not_running, _checks_not_running_scenarios),
    Companion("CrmSyncStalled", _sync_stalled, _sync_stalled_scenarios),
    Companion("CrmCanariesLost", _canaries_lost, _canaries_lost_scenarios),
    Companion("CrmProtectionBroken", _protection_broken, _protection_scenarios),
    Companion("CrmCertificateExpiringSoon", _expiring("CrmCertificateExpiringSoon", 14, "warning"),
              _expiring_scenarios(14)),
    Companion("CrmCertificateExpiring", _expiring("CrmCertificateExpiring", 3, "critical"),
              _expiring_scenarios(3)),
    Companion("CrmCertificateInvalid", _certificate_invalid, _certificate_invalid_scenarios),
    *(Companion(_ACCESS[kind][0], _access_alert(kind), _access_scenarios(kind)) for kind in _ACCESS),
    Companion("CrmWebhookSubscriptionFailing", _subscription_failing, _subscription_scenarios),
    Companion("CrmWebhookDeliveriesRejected", _deliveries_rejected, _rejected_scenarios),
    Companion("CrmApiQuotaExhaustion", _quota_exhaustion, _quota_exhaustion_scenarios),
)

BURN_ALERTS = tuple(f"Crm{kind}BurnRate{speed}" for kind in ("Availability", "Latency", "SyncLag")
                    for speed in ("Fast", "Slow"))
#: Every alert crmpulse can generate; each has alerts/runbooks/<name>.md.
ALERT_NAMES = BURN_ALERTS + tuple(companion.name for companion in COMPANIONS)
