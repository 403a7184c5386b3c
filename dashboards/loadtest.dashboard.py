"""Load tests: rate, users, per-operation latency against the gates, errors and throttling."""

from grafanalib.core import Dashboard

from crmpulse import contract as c
from crmpulse.config import Config
from crmpulse.dashboards.common import SEL, Layout, dashboard, timeline, timeseries

OP = f'{SEL},kind="operation",name=~"$operation"'


def build(config: Config) -> Dashboard:
    layout = Layout()
    layout.row("Load")
    layout.add(timeseries("Target vs achieved rate", "Requests per second the shape asks for and gets.",
                          (f"{c.LOADTEST_TARGET_RPS.series}{{{SEL}}}", "target"),
                          (f"{c.LOADTEST_ACHIEVED_RPS.series}{{{SEL}}}", "achieved"), unit="reqps"), 12, 8)
    layout.add(timeseries("Users", "Simulated users running.",
                          (f"{c.LOADTEST_USERS.series}{{{SEL}}}", "users")), 12, 8)
    layout.row("Latency against the gates")
    layout.add(timeseries("p95 per operation, with gate thresholds", "Dashed: the p95 gates of the run.",
                          (f"histogram_quantile(0.95, sum by (name, le) (rate("
                           f"{c.LOADTEST_DURATION.bucket()}{{{OP}}}[$__rate_interval])))", "{{name}} p95"),
                          (f'{c.LOADTEST_GATE.series}{{{SEL},percentile="p95"}}', "gate {{name}}"),
                          unit="s"), 24, 9)
    layout.add(timeseries("p50 / p99 per operation", "",
                          *[(f"histogram_quantile({q}, sum by (name, le) (rate("
                             f"{c.LOADTEST_DURATION.bucket()}{{{OP}}}[$__rate_interval])))",
                             f"{{{{name}}}} p{int(q * 100)}") for q in (0.5, 0.99)], unit="s"), 24, 8)
    layout.row("Errors")
    layout.add(timeseries("Failures and throttling", "Per second: failed requests and 429s.",
                          (f'sum by (name) (rate({c.LOADTEST_REQUESTS.series}{{{OP},result="failure"}}'
                           f"[$__rate_interval]))", "{{name}} failed"),
                          (f"sum by (name) (rate({c.LOADTEST_THROTTLED.series}{{{SEL}}}[$__rate_interval]))",
                           "{{name}} throttled"), unit="reqps"), 12, 8)
    layout.add(timeline("Gates passing", "Evaluated continuously during the run.",
                        (f"{c.LOADTEST_GATE_PASSING.series}{{{SEL}}}", "gates")), 12, 8)

    return dashboard("crmpulse-loadtest", layout,
                     "A load test while it runs: is the generator reaching its rate, are gates holding.",
                     ("operation",))
