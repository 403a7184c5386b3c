"""The metric-name contract: every metric crmpulse exports, defined once.

The probe exporter and the load test create their metrics from these definitions;
dashboards and alert rules build their PromQL from them. Renaming a metric here
renames it everywhere, so no panel or alert can silently point at a dead name.

Conventions (Prometheus naming): base units in names (``_seconds``, ``_bytes``),
``_total`` for counters, ``_info`` for build information, and label values from a
bounded set: a check name, a reason from :data:`FAILURE_REASONS`, a phase from
:data:`PHASES`, never an id, an email, a URL or an error text.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ACCESS_KINDS",
    "ACCESS_METRICS",
    "API_QUOTA_METRICS",
    "FAILURE_REASONS",
    "LOADTEST_METRICS",
    "METRICS",
    "PANELS",
    "PHASES",
    "PROBE_METRICS",
    "PROBE_REJECT_REASONS",
    "PROTECTIONS",
    "READ_PATHS",
    "RECORDED",
    "SUBSCRIPTION_STATES",
    "SYNC_STAGES",
    "WEBHOOK_REJECT_REASONS",
    "Metric",
    "Panel",
    "Recorded",
    "duration_buckets",
]

#: Why a check failed; the ``reason`` label takes only these values.
FAILURE_REASONS = ("timeout", "connect", "dns", "tls", "status", "assertion", "auth", "protection")
#: HTTP phases, named as blackbox_exporter names them.
PHASES = ("resolve", "connect", "tls", "processing", "transfer")
#: Protections a protection check verifies; the ``protection`` label takes these values.
PROTECTIONS = ("require_auth", "https_redirect", "hsts", "forbidden_patterns")


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str  # counter | gauge | histogram | info
    help: str
    labels: tuple[str, ...] = ()

    @property
    def series(self) -> str:
        """The name as it appears in PromQL for this kind (counters get ``_total``)."""
        suffix = {"counter": "_total", "info": "_info"}.get(self.kind, "")
        return self.name + suffix

    def bucket(self) -> str:
        return f"{self.name}_bucket"

    def count(self) -> str:
        return f"{self.name}_count"

    def sum(self) -> str:
        return f"{self.name}_sum"


_CHECK = ("target", "check")

# -- scheduled checks ------------------------------------------------------------------
CHECK_SUCCESS = Metric("crmpulse_check_success", "gauge",
                       "1 if the check's last run succeeded, 0 if it failed.", _CHECK)
CHECK_RUNS = Metric("crmpulse_check_runs", "counter", "Check runs completed.", _CHECK)
CHECK_FAILURES = Metric("crmpulse_check_failures", "counter",
                        "Check runs that failed, by reason.", (*_CHECK, "reason"))
CHECK_DURATION = Metric("crmpulse_check_duration_seconds", "histogram",
                        "Duration of check runs (journeys: all steps, without token fetches).",
                        _CHECK)
CHECK_PHASE = Metric("crmpulse_check_phase_duration_seconds", "gauge",
                     "Duration of each HTTP phase in the check's last run.", (*_CHECK, "phase"))
CHECK_LAST_RUN = Metric("crmpulse_check_last_run_timestamp_seconds", "gauge",
                        "Unix time the check last completed a run.", _CHECK)
CHECK_STATUS_CODE = Metric("crmpulse_check_http_status_code", "gauge",
                           "HTTP status of the check's last response (0 when none).", _CHECK)
CHECK_OVERRUNS = Metric("crmpulse_check_overruns", "counter",
                        "Scheduled runs skipped because the previous run outlasted the interval.",
                        _CHECK)
JOURNEY_STEP_DURATION = Metric("crmpulse_journey_step_duration_seconds", "histogram",
                               "Duration of each journey step.", (*_CHECK, "step"))
JOURNEY_STEP_FAILURES = Metric("crmpulse_journey_step_failures", "counter",
                               "Journey steps that failed, by reason.", (*_CHECK, "step", "reason"))
JOURNEY_AUTH_DURATION = Metric("crmpulse_journey_auth_duration_seconds", "gauge",
                               "Time the journey's last run spent fetching tokens (0 when cached).",
                               _CHECK)
TLS_EXPIRY = Metric("crmpulse_tls_cert_expiry_timestamp_seconds", "gauge",
                    "Unix time the served certificate expires.", _CHECK)
TLS_CHAIN_VALID = Metric("crmpulse_tls_cert_chain_valid", "gauge",
                         "1 if the certificate chain verified against the trust store.", _CHECK)
PROTECTION_HOLDS = Metric("crmpulse_protection_holds", "gauge",
                          "1 while the protection holds, 0 when the last run found it broken.",
                          (*_CHECK, "protection"))

# -- access checks ---------------------------------------------------------------------------
#: Kinds of access check; the ``kind`` label of access series takes these values.
ACCESS_KINDS = ("isolation", "role_scope", "exposure", "revocation", "bruteforce")
#: Read paths an isolation check judges; its ``path`` label takes these values. The other
#: kinds' ``path`` is an operation name from the config (role_scope: ``fields:<operation>``
#: for hidden fields), ``revoke``/``revoked`` (revocation) or ``login`` (bruteforce).
READ_PATHS = ("get", "list", "search", "global_search", "export", "report")
ACCESS_HOLDS = Metric("crmpulse_access_holds", "gauge",
                      "1 while the access protection holds on this path, 0 when the last run "
                      "that could judge it found it broken (a record visible to another tenant, a "
                      "restricted credential allowed, personal data exposed, a revoked token "
                      "accepted, no login lockout).", (*_CHECK, "kind", "path"))
ACCESS_EXPOSED = Metric("crmpulse_access_exposed_values", "gauge",
                        "Personal-data values the last exposure run found beyond what the config "
                        "allows, by read and detector (a count: values are never exported).",
                        (*_CHECK, "path", "detector"))
ACCESS_REVOCATION = Metric("crmpulse_access_revocation_seconds", "gauge",
                           "Seconds from revoking a token to its first refusal, in the last run "
                           "that revoked one (the time waited when it was never refused).", _CHECK)
ACCESS_LOGIN_ATTEMPTS = Metric("crmpulse_access_login_attempts", "gauge",
                               "Wrong passwords the last bruteforce run sent before the canary "
                               "account was throttled or locked (every one it sent when it never "
                               "was).", _CHECK)
ACCESS_METRICS = (ACCESS_HOLDS, ACCESS_EXPOSED, ACCESS_REVOCATION, ACCESS_LOGIN_ATTEMPTS)

# -- sync lag ------------------------------------------------------------------------------
_PAIR = ("target", "pair")
SYNC_STAGES = ("write", "read", "cleanup", "sweep", "subscribe")
SYNC_LAG = Metric("crmpulse_sync_lag_seconds", "gauge",
                  "Current sync lag: heartbeat, now minus the newest heartbeat visible on the read "
                  "side (keeps growing during a stall); canary/webhook, the larger of the last "
                  "measured lag and the age of the oldest unseen record (a lost record stays unseen "
                  "until a later one is seen, so the lag keeps growing during a stall).", _PAIR)
SYNC_LAG_OBSERVED = Metric("crmpulse_sync_lag_observed_seconds", "histogram",
                           "Lag of each record (canary, webhook event, heartbeat stamp) from write "
                           "to visible; buckets include every sync SLO threshold.", _PAIR)
SYNC_CREATED = Metric("crmpulse_sync_canaries_created", "counter",
                      "Records written to measure sync (canaries, webhook probes, heartbeats).",
                      _PAIR)
SYNC_SEEN = Metric("crmpulse_sync_canaries_seen", "counter",
                   "Written records that became visible within the SLA.", _PAIR)
SYNC_LOST = Metric("crmpulse_sync_canaries_lost", "counter",
                   "Written records not visible within the SLA.", _PAIR)
SYNC_IN_FLIGHT = Metric("crmpulse_sync_canaries_in_flight", "gauge",
                        "Written records waiting to become visible.", _PAIR)
SYNC_LAST_SUCCESS = Metric("crmpulse_sync_last_success_timestamp_seconds", "gauge",
                           "Unix time a written record last became visible.", _PAIR)
SYNC_DELETED = Metric("crmpulse_sync_cleanup_deleted", "counter",
                      "Records the probe created and deleted after their run.", _PAIR)
SYNC_ORPHANS_FOUND = Metric("crmpulse_sync_orphans_found", "counter",
                            "Marked records the sweeper found older than sweep_after.", _PAIR)
SYNC_ORPHANS_DELETED = Metric("crmpulse_sync_orphans_deleted", "counter",
                              "Orphaned marked records the sweeper deleted.", _PAIR)
SYNC_DELETE_FAILURES = Metric("crmpulse_sync_delete_failures", "counter",
                              "Deletes of marked records that failed (retried later).", _PAIR)
SYNC_ERRORS = Metric("crmpulse_sync_errors", "counter",
                     "Sync probe requests that failed, by stage and reason.",
                     (*_PAIR, "stage", "reason"))
#: Why a webhook delivery was refused (401) and not measured.
WEBHOOK_REJECT_REASONS = ("missing", "malformed", "mismatch")
#: States of a webhook pair's subscription: ``auth_failed`` is our credential (a ticket),
#: ``failed`` anything else the CRM answered; while not ``subscribed`` no record is written,
#: so lost records mean deliveries that are late or missing (a page).
SUBSCRIPTION_STATES = ("pending", "subscribed", "auth_failed", "failed")
SYNC_WEBHOOK_REJECTED = Metric("crmpulse_sync_webhook_rejected", "counter",
                               "Webhook deliveries refused with 401 and not measured, by reason: "
                               "signature missing, malformed or not matching.", (*_PAIR, "reason"))
SYNC_SUBSCRIPTION = Metric("crmpulse_sync_webhook_subscription", "gauge",
                           "1 for the webhook subscription's current state (pending, subscribed, "
                           "auth_failed, failed), 0 for the others.", (*_PAIR, "state"))
SYNC_METRICS = (SYNC_LAG, SYNC_LAG_OBSERVED, SYNC_CREATED, SYNC_SEEN, SYNC_LOST, SYNC_IN_FLIGHT,
                SYNC_LAST_SUCCESS, SYNC_DELETED, SYNC_ORPHANS_FOUND, SYNC_ORPHANS_DELETED,
                SYNC_DELETE_FAILURES, SYNC_ERRORS, SYNC_WEBHOOK_REJECTED, SYNC_SUBSCRIPTION)

# -- load tests (live, from `crmpulse loadtest`) ---------------------------------------------
_LT = ("target", "kind", "name")
LOADTEST_REQUESTS = Metric("crmpulse_loadtest_requests", "counter",
                           "Load-test requests (kind=operation) and journey iterations "
                           "(kind=journey), by result.", (*_LT, "result"))
LOADTEST_DURATION = Metric("crmpulse_loadtest_request_duration_seconds", "histogram",
                           "Load-test response times per operation or journey iteration "
                           "(from the run's HDR histograms).", _LT)
LOADTEST_THROTTLED = Metric("crmpulse_loadtest_throttled", "counter",
                            "Load-test requests answered 429 (throttling).", ("target", "name"))
LOADTEST_USERS = Metric("crmpulse_loadtest_users", "gauge", "Simulated users running now.",
                        ("target",))
LOADTEST_TARGET_RPS = Metric("crmpulse_loadtest_target_rps", "gauge",
                             "Request rate the load shape asks for (0: no target rate, "
                             "users with think time).", ("target",))
LOADTEST_ACHIEVED_RPS = Metric("crmpulse_loadtest_achieved_rps", "gauge",
                               "Request rate achieved over the last seconds.", ("target",))
LOADTEST_RUNNING = Metric("crmpulse_loadtest_running", "gauge",
                          "1 while a load test is running.", ("target",))
LOADTEST_INFO = Metric("crmpulse_loadtest", "info", "The running load test's run id.",
                       ("target", "run"))
LOADTEST_GATE = Metric("crmpulse_loadtest_gate_threshold_seconds", "gauge",
                       "Latency gate thresholds, to draw on dashboards.",
                       ("target", "name", "percentile"))  # not `quantile`: summaries own it
LOADTEST_GATE_PASSING = Metric("crmpulse_loadtest_gates_passing", "gauge",
                               "1 while every gate passes (evaluated continuously).", ("target",))
LOADTEST_METRICS = (LOADTEST_REQUESTS, LOADTEST_DURATION, LOADTEST_THROTTLED, LOADTEST_USERS,
                    LOADTEST_TARGET_RPS, LOADTEST_ACHIEVED_RPS, LOADTEST_RUNNING, LOADTEST_INFO,
                    LOADTEST_GATE, LOADTEST_GATE_PASSING)

# -- the exporter itself ---------------------------------------------------------------
BUILD_INFO = Metric("crmpulse_build", "info", "crmpulse version and Python version.",
                    ("version", "python"))
CONFIG_RELOAD_OK = Metric("crmpulse_config_last_reload_successful", "gauge",
                          "1 if the last configuration reload succeeded.")
CONFIG_RELOAD_TIME = Metric("crmpulse_config_last_reload_success_timestamp_seconds", "gauge",
                            "Unix time of the last successful configuration load.")
CONFIG_RELOADS = Metric("crmpulse_config_reloads", "counter",
                        "Configuration reloads, by result (success, failure).", ("result",))
SCRAPE_DURATION = Metric("crmpulse_exporter_scrape_duration_seconds", "histogram",
                         "Time to render /metrics.")
CHECKS_CONFIGURED = Metric("crmpulse_checks_configured", "gauge",
                           "Checks in the running configuration (all shards').", ("target",))
CHECKS_RUNNING = Metric("crmpulse_checks_running", "gauge",
                        "Checks whose schedule is running on this exporter (its shard's share; "
                        "/-/ready reports the same).", ("target",))
SYNC_PAIRS_CONFIGURED = Metric("crmpulse_sync_pairs_configured", "gauge",
                               "Sync pairs in the running configuration (all shards').", ("target",))
SYNC_PAIRS_RUNNING = Metric("crmpulse_sync_pairs_running", "gauge",
                            "Sync pairs whose loop is running on this exporter (its shard's share; "
                            "/-/ready reports the same).", ("target",))
SHARD_INFO = Metric("crmpulse_exporter_shard", "info",
                    "Which share of the checks this exporter runs (index of count).",
                    ("index", "count"))
PROBES_IN_FLIGHT = Metric("crmpulse_exporter_probes_in_flight", "gauge",
                          "/probe requests running now.")
PROBES_REJECTED = Metric("crmpulse_exporter_probes_rejected", "counter",
                         "/probe requests refused before running, by reason (concurrency: "
                         "probes.max_concurrent_probes were already running).", ("reason",))
#: Why a /probe request was refused before running; the ``reason`` label takes these values.
PROBE_REJECT_REASONS = ("concurrency",)

# -- /probe (multi-target pattern): blackbox_exporter's names, so its dashboards work -----
# -- API quotas (read from the CRM's responses and limits operations; crmpulse.quota) ------
_QUOTA = ("target", "quota", "window")
API_QUOTA_USED = Metric("crmpulse_api_quota_used", "gauge",
                        "How much of the CRM's API quota is spent in its window, as the CRM last said.",
                        _QUOTA)
API_QUOTA_LIMIT = Metric("crmpulse_api_quota_limit", "gauge",
                         "The CRM's API quota for its window, as the CRM last said.", _QUOTA)
API_QUOTA_RESET = Metric("crmpulse_api_quota_reset_timestamp_seconds", "gauge",
                         "When the quota's window resets, when the CRM says (unix time).", _QUOTA)
API_QUOTA_WINDOW = Metric("crmpulse_api_quota_window_seconds", "gauge",
                          "The quota's window as the profile documents it (its forecast horizon "
                          "when the CRM names no reset time).", _QUOTA)
API_QUOTA_OBSERVED = Metric("crmpulse_api_quota_observed_timestamp_seconds", "gauge",
                            "When the CRM last reported the quota (unix time).", _QUOTA)
API_QUOTA_METRICS = (API_QUOTA_USED, API_QUOTA_LIMIT, API_QUOTA_RESET, API_QUOTA_WINDOW,
                     API_QUOTA_OBSERVED)

PROBE_SUCCESS = Metric("probe_success", "gauge", "Whether the probe succeeded.")
PROBE_DURATION = Metric("probe_duration_seconds", "gauge",
                        "How long the probe took to complete in seconds.")
PROBE_HTTP_DURATION = Metric("probe_http_duration_seconds", "gauge",
                             "Duration of HTTP request by phase, summed over all redirects.",
                             ("phase",))
PROBE_HTTP_STATUS = Metric("probe_http_status_code", "gauge", "Response HTTP status code.")
PROBE_DNS_LOOKUP = Metric("probe_dns_lookup_time_seconds", "gauge",
                          "Returns the time taken for probe dns lookup in seconds.")
PROBE_SSL_EXPIRY = Metric("probe_ssl_earliest_cert_expiry", "gauge",
                          "Returns last SSL chain expiry in unixtime.")
PROBE_FAILURE = Metric("probe_crmpulse_failure_reason", "gauge",
                       "1 for the reason the probe failed, 0 for the others.", ("reason",))
PROBE_STEP_DURATION = Metric("probe_crmpulse_step_duration_seconds", "gauge",
                             "Duration of each journey step.", ("step",))
PROBE_METRICS = (PROBE_SUCCESS, PROBE_DURATION, PROBE_HTTP_DURATION, PROBE_HTTP_STATUS,
                 PROBE_DNS_LOOKUP, PROBE_SSL_EXPIRY, PROBE_FAILURE, PROBE_STEP_DURATION)

METRICS = (*SYNC_METRICS, *LOADTEST_METRICS, CHECK_SUCCESS, CHECK_RUNS, CHECK_FAILURES,
           CHECK_DURATION, CHECK_PHASE, CHECK_LAST_RUN, CHECK_STATUS_CODE, CHECK_OVERRUNS,
           JOURNEY_STEP_DURATION, JOURNEY_STEP_FAILURES, JOURNEY_AUTH_DURATION, TLS_EXPIRY,
           TLS_CHAIN_VALID, PROTECTION_HOLDS, BUILD_INFO, CONFIG_RELOAD_OK, CONFIG_RELOAD_TIME,
           CONFIG_RELOADS, SCRAPE_DURATION, CHECKS_CONFIGURED, CHECKS_RUNNING,
           SYNC_PAIRS_CONFIGURED, SYNC_PAIRS_RUNNING, SHARD_INFO, PROBES_IN_FLIGHT, PROBES_REJECTED,
           *ACCESS_METRICS, *API_QUOTA_METRICS)

# -- recorded series (Prometheus recording rules written by `crmpulse alerts`) ------------
@dataclass(frozen=True)
class Recorded:
    """A recording rule's output, named ``level:metric:operations`` as Prometheus advises.

    Defined here beside the raw names so dashboards and alerts import one spelling.
    """

    name: str
    help: str
    labels: tuple[str, ...] = ("target", "slo", "kind")

    @property
    def series(self) -> str:
        return self.name

    def at(self, window: str) -> str:
        """The name for one rate window, for names that end in ``_rate`` (``...:ratio_rate1h``)."""
        if not self.name.endswith("_rate"):
            raise ValueError(f"{self.name} has no window")
        return self.name + window


SLO_ERROR_RATIO_RATE = Recorded("crmpulse_slo:sli_error:ratio_rate",
                                "Share of bad events over a window (suffix: the window, e.g. 1h).")
SLO_ERRORS_RATE5M = Recorded("crmpulse_slo:sli_errors:rate5m", "Bad events per second over 5 minutes.")
SLO_EVENTS_RATE5M = Recorded("crmpulse_slo:sli_events:rate5m", "All events per second over 5 minutes.")
SLO_ERROR_RATIO_PERIOD = Recorded("crmpulse_slo:sli_error:ratio_period",
                                  "Share of bad events over the whole SLO window (a ratio of sums).")
SLO_OBJECTIVE = Recorded("crmpulse_slo:objective:ratio", "The SLO's objective as a ratio (0.999).")
SLO_BUDGET_REMAINING = Recorded("crmpulse_slo:error_budget_remaining:ratio",
                                "Share of the SLO window's error budget not yet spent (can go negative).")
RECORDED = (SLO_ERROR_RATIO_RATE, SLO_ERRORS_RATE5M, SLO_EVENTS_RATE5M, SLO_ERROR_RATIO_PERIOD,
            SLO_OBJECTIVE, SLO_BUDGET_REMAINING)


# -- dashboard panels alerts link to (deep links: /d/<dashboard>?viewPanel=<id>) ----------
@dataclass(frozen=True)
class Panel:
    """A dashboard panel an alert deep-links to; the dashboard gives it exactly this id.

    Ids are 100 and up so they never meet the ids the layout numbers from 1.
    """

    dashboard: str  # the dashboard's uid
    id: int
    title: str


PANEL_FAILURES = Panel("crmpulse-overview", 101, "Failures by reason")
PANEL_LATENCY = Panel("crmpulse-overview", 102, "Latency per check (p50, p95, p99)")
PANEL_SYNC_LAG = Panel("crmpulse-overview", 103, "Sync lag per pair")
PANEL_CHECK_STATUS = Panel("crmpulse-overview", 104, "Check status")
PANEL_PROTECTIONS = Panel("crmpulse-overview", 105, "Protections")
PANEL_CERT_EXPIRY = Panel("crmpulse-overview", 106, "Certificate expires in")
PANEL_CERT_CHAIN = Panel("crmpulse-overview", 107, "Certificate chain valid")
PANEL_BURN_RATE = Panel("crmpulse-overview", 108, "Burn rate (1 h window)")
PANEL_ACCESS = Panel("crmpulse-overview", 109, "Access protections")
PANEL_EXPOSURE = Panel("crmpulse-overview", 110, "Exposed personal data")
PANEL_API_QUOTA = Panel("crmpulse-overview", 111, "API quota used")
PANEL_CHECKS_RUNNING = Panel("crmpulse-exporter", 112, "Checks configured / running")
PANELS = (PANEL_FAILURES, PANEL_LATENCY, PANEL_SYNC_LAG, PANEL_CHECK_STATUS, PANEL_PROTECTIONS,
          PANEL_CERT_EXPIRY, PANEL_CERT_CHAIN, PANEL_BURN_RATE, PANEL_ACCESS, PANEL_EXPOSURE,
          PANEL_API_QUOTA, PANEL_CHECKS_RUNNING)


#: Base buckets for request durations; SLO thresholds are merged in so every latency
#: SLO can be computed exactly from one bucket (``le`` = the threshold).
DEFAULT_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


#: Sync lags run from milliseconds (a fast index) to many minutes (a nightly ERP batch).
DEFAULT_SYNC_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
                        1800.0, 3600.0)


def duration_buckets(thresholds: tuple[float, ...] | list[float] = (),
                     base: tuple[float, ...] = DEFAULT_DURATION_BUCKETS) -> tuple[float, ...]:
    """The base buckets plus every SLO threshold, sorted, without duplicates."""
    return tuple(sorted({*base, *(round(t, 6) for t in thresholds)}))
