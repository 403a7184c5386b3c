"""The ``crmpulse`` command: one verb per job.

Exit codes: 0 success, 1 the run found a problem (a failed operation or gate),
2 bad usage or bad config, 141 when the reader of stdout went away (like SIGPIPE).
Errors are one line each, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import __version__, redact
from .._exceptions import ConfigError, CrmpulseError
from ..units import parse_duration

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_SANDBOX_PORT = 8085


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default as the user would type it, unless the help says it already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, [], argparse.SUPPRESS):
            return text
        return text + " (default: %(default)s)"


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _config_arg(parser: argparse.ArgumentParser, positional: bool = False) -> None:
    default = os.environ.get("CRMPULSE_CONFIG", "crmpulse.yaml")
    help_ = "config file (env CRMPULSE_CONFIG)"
    if positional:
        parser.add_argument("config", nargs="?", default=default, help=help_)
    else:
        parser.add_argument("--config", "-c", default=default, help=help_)


def cmd_check_config(args: argparse.Namespace) -> int:
    from ..callers import check_journeys
    from ..config import load_config

    loaded = load_config(args.config)
    c = loaded.config
    notes: list[str] = []
    if c.target.safety.allow_loadtest and loaded.lines is not None:
        problems, notes = check_journeys(c, loaded.profile, _journeys(), loaded.lines)
        if problems:
            raise ConfigError(problems)
    print(f"{args.config}: valid (target {c.target.name} at {c.target.base_url}, profile "
          f"{loaded.profile.name} with {len(loaded.profile.operations)} operations, "
          f"{len(c.slos)} SLOs, {len(c.probes.checks)} checks, {len(c.probes.sync)} sync pairs)")
    for note in notes:
        print(f"  note: {note}")
    return EXIT_OK


def _journeys() -> dict[str, Any]:
    """The load-test journeys that declare what they call (crmpulse.loadtests.journeys)."""
    os.environ.setdefault("LOCUST_SKIP_MONKEY_PATCH", "1")  # declarations only: no gevent here
    from crmpulse.loadtests.journeys import JOURNEYS

    return {name: cls for name, cls in JOURNEYS.items() if hasattr(cls, "calls")}


#: Presets `crmpulse init --preset` knows: the sandbox dialect that emulates each, and the
#: environment variables its starter reads, with the sandbox's public test values.
PRESETS: dict[str, tuple[str, dict[str, str]]] = {
    "salesforce": ("salesforce", {"SALESFORCE_CLIENT_SECRET": "sandbox-secret"}),
    "hubspot": ("hubspot", {"HUBSPOT_TOKEN": "pat-na1-11111111-1111-4111-8111-111111111111"}),
    "dynamics365": ("dynamics", {"DYNAMICS_CLIENT_SECRET": "sandbox-secret"}),
}


def starter_text(preset: str | None, sandbox: bool = False) -> str:
    """The starter config: the sandbox's, or a preset's (its target swapped for the sandbox's)."""
    root = Path(__file__).parents[1]
    if preset is None:
        return (root / "starter.yaml").read_text(encoding="utf-8")
    text = (root / f"starter-{preset}.yaml").read_text(encoding="utf-8")
    if not sandbox:
        return text
    block = (root / f"starter-{preset}-sandbox.yaml").read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    start = lines.index("target:\n")
    end = next(i for i in range(start + 1, len(lines))
               if lines[i].strip() and not lines[i].startswith((" ", "#")))
    return "".join(lines[:start]) + block + "\n" + "".join(lines[end:])


def cmd_init(args: argparse.Namespace) -> int:
    target = Path(args.path)
    if args.sandbox and not args.preset:
        print("crmpulse: --sandbox goes with --preset (the plain starter is the sandbox's already)",
              file=sys.stderr)
        return EXIT_USAGE
    if target.exists() and not args.force:
        print(f"crmpulse: {target} exists; use --force to overwrite it", file=sys.stderr)
        return EXIT_USAGE
    target.write_text(starter_text(args.preset, args.sandbox), encoding="utf-8")
    if args.preset is None:
        print(f"Wrote {target}. Next:\n"
              f"  crmpulse sandbox &                            "
              f"# the sandbox CRM on 127.0.0.1:{DEFAULT_SANDBOX_PORT}\n"
              f"  export CRMPULSE_CLIENT_SECRET=sandbox-secret  # the sandbox's public test secret\n"
              f"  crmpulse check-config {target}")
        return EXIT_OK
    dialect, secrets = PRESETS[args.preset]
    if args.sandbox:
        exports = "".join(f"  export {name}={value}  # the sandbox's public test value\n"
                          for name, value in secrets.items())
        print(f"Wrote {target} for the {args.preset} preset against the sandbox's {dialect} dialect. "
              f"Next:\n  crmpulse sandbox --dialect {dialect} &  # on 127.0.0.1:{DEFAULT_SANDBOX_PORT}\n"
              f"{exports}  crmpulse check-config {target} && crmpulse smoke -c {target}")
    else:
        print(f"Wrote {target} for the {args.preset} preset. Next: set target.base_url (and the "
              f"names marked in its comments) to your {args.preset} instance, export the variables "
              f"its header lists, then\n  crmpulse check-config {target} && crmpulse smoke -c {target}\n"
              "What to set up in the CRM: docs/profiles.md. To try it first against the sandbox: "
              f"crmpulse init --preset {args.preset} --sandbox")
    return EXIT_OK


def cmd_sandbox(args: argparse.Namespace) -> int:
    from ..sandbox import SandboxServer, SandboxSettings

    if (args.tls_cert is None) != (args.tls_key is None):
        print("crmpulse: --tls-cert and --tls-key go together", file=sys.stderr)
        return EXIT_USAGE
    settings = SandboxSettings(db=args.db, seed=args.seed, sync_lag_ms=args.sync_lag * 1000,
                               token_ttl=args.token_ttl, admin_token=args.admin_token,
                               dialect=args.dialect)
    try:
        server = SandboxServer(settings, host=args.host, port=args.port,
                               ssl_certfile=args.tls_cert, ssl_keyfile=args.tls_key)
    except OSError as exc:
        print(f"crmpulse: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILED
    print(f"Sandbox CRM on {server.url} ({args.dialect} API, {args.seed} seeded contacts, db {args.db}, "
          f"sync lag {args.sync_lag * 1000:g} ms). Test credentials: docs/sandbox.md. Ctrl-C stops.",
          flush=True)
    server.serve_forever()
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo, run_full_demo

    if args.quick:
        return run_demo(seed=args.seed, sync_lag_ms=args.sync_lag * 1000)
    return run_full_demo(folder=Path(args.dir) if args.dir else None)


def cmd_smoke(args: argparse.Namespace) -> int:
    from ..config import load_config
    from .demo import run_smoke

    return run_smoke(load_config(args.config))


def cmd_call(args: argparse.Namespace) -> int:
    import json

    from ..client import Client
    from ..config import load_config

    loaded = load_config(args.config)
    if args.operation not in loaded.profile.operations and args.operation != "authenticate":
        print(f"crmpulse: profile {loaded.profile.name} has no operation {args.operation!r} "
              f"(it has: {', '.join(sorted(loaded.profile.operations))})", file=sys.stderr)
        return EXIT_USAGE
    variables = {}
    for pair in args.variables:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            print(f"crmpulse: expected NAME=VALUE, got {pair!r}", file=sys.stderr)
            return EXIT_USAGE
        variables[key] = _typed(value)
    with Client(loaded) as crm:
        result = crm.call(args.operation, max_pages=args.pages, **variables)
        report = crm.cleanup() if not args.keep else None
    status = result.status or "-"
    print(f"{args.operation}: {'ok' if result.ok else 'FAILED'} status {status} "
          f"in {result.elapsed * 1000:.1f} ms" + (f" ({result.pages} pages)" if result.pages > 1 else ""))
    if not result.ok:
        print(f"  {result.message or result.reason}")
        if result.body:
            print(f"  the CRM answered: {_shown_body(result.body)}")
    if result.values:
        print(json.dumps(result.values, indent=2, default=str))
    if report and report.created:
        print(f"Deleted the {report.deleted} record(s) this call created (use --keep to keep them).")
    return EXIT_OK if result.ok else EXIT_FAILED


#: How much of a CRM's error body `crmpulse call` shows.
ERROR_BODY_SHOWN = 2000


def _typed(value: str) -> Any:
    """``NAME=VALUE`` typing: valid JSON is that JSON value, anything else is the text as typed.

    So ``amount=12000`` is a number, ``tags='["a","b"]'`` a list, ``closed_on=2030-01-31`` and
    ``zip=01234`` stay text (neither is JSON), and ``id='"123"'`` forces text. YAML's guesses
    (dates, ``yes``, ``0x1F``) are not applied: a date would not survive JSON encoding.
    """
    from ..profile import loads_json

    try:
        return loads_json(value)
    except (ValueError, RecursionError):  # not JSON (or nested past Python's limit): text
        return value


def _shown_body(body: bytes) -> str:
    """An error body for a terminal: secrets masked, control characters escaped, truncated."""
    text = redact.redact(body[:ERROR_BODY_SHOWN * 4].decode("utf-8", "replace"))
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    if len(text) > ERROR_BODY_SHOWN or len(body) > ERROR_BODY_SHOWN * 4:
        text = text[:ERROR_BODY_SHOWN] + f"... ({len(body)} bytes in all)"
    return text


def cmd_probe(args: argparse.Namespace) -> int:
    import logging

    from crmpulse.probes.exporter import Exporter, create_app
    from crmpulse.probes.sharding import parse_shard
    from crmpulse.probes.webconfig import basic_auth_middleware, load_web_config

    from ..config import load_config
    from ..serving import bind, parse_listen, server_for

    try:
        shard = parse_shard(args.shard) if args.shard else None
    except ValueError as exc:
        print(f"crmpulse: --shard: {exc}", file=sys.stderr)
        return EXIT_USAGE
    loaded = load_config(args.config)
    web = load_web_config(args.web_config_file) if args.web_config_file else None
    listen = args.listen or loaded.config.probes.listen
    if args.check_config:
        # building the runners loads the TLS files: a file that does not load is reported
        built = Exporter(Path(args.config), loaded, listen=listen, shard=shard).build()
        print(f"{args.config}: valid ({len(loaded.config.probes.checks)} checks and "
              f"{len(loaded.config.probes.sync)} sync pairs for target {loaded.target.name}"
              + (f"; shard {built.shard[0]}/{built.shard[1]} runs {len(built.checks)} checks "
                 f"and {len(built.pairs)} sync pairs" if built.shard[1] > 1 else "") + ")")
        return EXIT_OK
    if args.sweep_only:
        import asyncio

        exporter = Exporter(Path(args.config), loaded, listen=listen, shard=shard)
        reports = asyncio.run(exporter.sweep_only(args.sweep_older_than))
        failed = False
        for r in reports:
            status = r.error or f"{r.listed} marked, {r.orphans} orphaned, {r.deleted} deleted, " \
                f"{r.failed} failed"
            print(f"sync pair {r.pair}: {status}")
            failed = failed or bool(r.error) or r.failed > 0
        if not reports:
            print("no sync pairs configured: nothing to sweep")
        return EXIT_FAILED if failed else EXIT_OK
    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        print(f"crmpulse: --listen: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="ts=%(asctime)s level=%(levelname)s msg=%(message)s")
    # httpx logs every request with its full URL (record ids included): keep it quiet
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        sock = bind(host, port)
    except OSError as exc:
        print(f"crmpulse: cannot listen on {listen}: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILED
    # the bound port (port 0 picks one), so webhook subscriptions name where we really listen
    exporter = Exporter(Path(args.config), loaded, listen=f"{host}:{sock.getsockname()[1]}",
                        shard=shard)
    # runners are built (TLS files loaded) before anything is served: a file that does not
    # load is a config error (exit 2), not an exporter running no checks
    exporter.pending = exporter.build()
    app = redact.redacting_app(create_app(exporter))  # landing page, /metrics, /probe
    if web is not None:
        app = basic_auth_middleware(app, web)
    scheme = "https" if web and web.cert_file else "http"
    print(f"crmpulse probe: {len(loaded.config.probes.checks)} checks against "
          f"{loaded.target.base_url}; metrics on {scheme}://{host}:{sock.getsockname()[1]}/metrics",
          flush=True)
    server = server_for(app, ssl_certfile=web.cert_file if web else None,
                        ssl_keyfile=web.key_file if web else None)
    server.run(sockets=[sock])
    return EXIT_OK if server.started else EXIT_FAILED


def cmd_loadtest(args: argparse.Namespace) -> int:
    from crmpulse.loadtests.run import run_loadtest

    from ..config import load_config

    for name in ("users", "rate"):
        if getattr(args, name) <= 0:
            print(f"crmpulse: --{name} must be a positive multiplier, got {getattr(args, name):g}",
                  file=sys.stderr)
            return EXIT_USAGE
    if args.worker and args.master:
        print("crmpulse: --master and --worker exclude each other", file=sys.stderr)
        return EXIT_USAGE
    loaded = load_config(args.config)
    return run_loadtest(loaded, args.config, dry_run=args.dry_run, workers=args.workers,
                        report_dir=args.report_dir, web=args.web,
                        metrics_listen=args.metrics_listen, extra=args.locust_args,
                        duration=args.duration, users=args.users, rate=args.rate,
                        master=args.master, worker=args.worker, master_host=args.master_host,
                        master_port=args.master_port, expect_workers=args.expect_workers,
                        find_capacity=args.find_capacity, capacity_step=args.capacity_step,
                        capacity_start=args.capacity_start)


def cmd_sweep(args: argparse.Namespace) -> int:
    from ..client import Client
    from ..config import load_config
    from ..markers import (
        access_targets,
        family_marker,
        loadtest_targets,
        run_marker,
        sweep,
        sync_targets,
    )

    loaded = load_config(args.config)
    target_name = loaded.target.name
    if args.run:
        try:
            wanted = run_marker(target_name, args.run)
        except ValueError as exc:
            print(f"crmpulse: --run: {exc}", file=sys.stderr)
            return EXIT_USAGE
        targets = loadtest_targets(loaded, wanted, lambda found: wanted in found)
    else:
        family = family_marker(target_name)
        targets = loadtest_targets(loaded, family, lambda found: any(
            m.kind == "lt" and m.target == target_name for m in found))
        targets += sync_targets(loaded)
        targets += access_targets(loaded)
    if not targets:
        print(f"crmpulse: profile {loaded.profile.name} has no sweep section and no sync pairs are "
              "configured: nothing tells crmpulse how to list marked records", file=sys.stderr)
        return EXIT_FAILED
    failed = False
    verb = "would delete" if args.dry_run else "deleted"
    with Client(loaded) as client:
        from crmpulse.loadtests.cleanup import call_retrying

        call = call_retrying(client)
        variables = client.session.variables({})
        for target in targets:
            result = sweep(call, target, variables, dry_run=args.dry_run,
                           older_than=args.older_than or 0.0)
            count = result.matched if args.dry_run else result.deleted
            line = (f"{target.label}: listed {result.listed}, marked {result.matched + result.skipped_young}"
                    f", {verb} {count}")
            if result.skipped_young:
                line += f", kept {result.skipped_young} younger than --older-than"
            if result.failed:
                line += f", FAILED {result.failed}"
            print(line)
            for error in result.errors[:3]:
                print(f"  {error}")
            failed = failed or bool(result.errors) or result.failed > 0
    return EXIT_FAILED if failed else EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from crmpulse.loadtests.compare import Tolerances, compare_runs, load_run, write_comparison

    if args.action is None:
        args.report_parser.print_help()
        return EXIT_USAGE
    try:
        baseline, candidate = load_run(Path(args.baseline)), load_run(Path(args.candidate))
    except ValueError as exc:
        print(f"crmpulse: {exc}", file=sys.stderr)
        return EXIT_USAGE
    tolerances = Tolerances(latency=args.latency_tolerance, latency_floor_ms=args.latency_floor * 1000,
                            error_ratio=args.error_tolerance, throughput=args.throughput_tolerance)
    comparison = compare_runs(baseline, candidate, tolerances)
    paths = write_comparison(comparison, Path(args.out))
    for finding in comparison.regressions:
        print(f"REGRESSED {finding.operation} {finding.metric}: {finding.baseline:.3f} -> "
              f"{finding.candidate:.3f} ({finding.change:+.1f} %)")
    changed = sum(1 for f in comparison.findings if f.verdict != "within noise")
    print(f"crmpulse: {len(comparison.regressions)} regression(s), {changed} significant change(s) in "
          f"{len(comparison.findings)} figures; report {paths['html']} (also {paths['markdown'].name}, "
          f"{paths['json'].name})")
    return EXIT_FAILED if comparison.regressions else EXIT_OK


def _percent(text: str) -> float:
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a percentage like "10%", got {text!r}') from None
    if not 0 <= value < 1000:
        raise argparse.ArgumentTypeError(f"expected 0 to 1000, got {text!r}")
    return value


def cmd_alerts(args: argparse.Namespace) -> int:
    from crmpulse.alerts.generate import explain, generate

    from ..config import load_config

    loaded = load_config(args.config)
    if args.explain:
        print(explain(loaded))
        return EXIT_OK
    if args.compress < 1:
        print("crmpulse: --compress must be 1 or more", file=sys.stderr)
        return EXIT_USAGE
    out = Path(os.path.normpath(args.out))
    written = generate(loaded, out, kubernetes=args.kubernetes, compress=args.compress)
    print(f"Wrote {len(written)} files to {out}: " + ", ".join(sorted(written)))
    check = f"promtool check rules {out / '*.rules.yml'}"
    if any(name.startswith("tests/") for name in written):
        check += f" && promtool test rules {out / 'tests' / '*.test.yml'}"
    print(f"Check them: {check}")
    return EXIT_OK


def cmd_slo(args: argparse.Namespace) -> int:
    from crmpulse.alerts.status import PrometheusUnreadable, slo_status

    from ..config import load_config

    if args.action is None:
        args.slo_parser.print_help()
        return EXIT_USAGE
    loaded = load_config(args.config)
    try:
        status = slo_status(loaded, args.prometheus, compress=args.compress)
    except PrometheusUnreadable as exc:
        print(f"crmpulse: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(status.text())
    if status.exhausted:
        spent = [s.spec.name for s in status.slos if s.exhausted]
        print(f"Error budget exhausted: {', '.join(spent)}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_dashboards(args: argparse.Namespace) -> int:
    from crmpulse.dashboards.generate import write_dashboards

    from ..config import load_config

    loaded = load_config(args.config)
    written = write_dashboards(loaded, Path(args.out))
    print(f"Wrote {len(written)} dashboards to {args.out}: " + ", ".join(p.name for p in written))
    print("Provision them with Grafana's file provisioning: `crmpulse deploy --out DIR` writes "
          "grafana/dashboards.yml and the rest (docs/dashboards.md).")
    return EXIT_OK


def cmd_deploy(args: argparse.Namespace) -> int:
    source = Path(__file__).parents[1] / "deploy"
    out = Path(args.out)
    files = sorted(p for p in source.rglob("*") if p.is_file())
    clashes = [p for p in files if (out / p.relative_to(source)).exists()]
    if clashes and not args.force:
        print(f"crmpulse: {out / clashes[0].relative_to(source)} exists (and {len(clashes) - 1} more); "
              "use --force to overwrite", file=sys.stderr)
        return EXIT_USAGE
    for path in files:
        target = out / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    areas = sorted({p.relative_to(source).parts[0] for p in files})
    print(f"Wrote {len(files)} deploy files to {out}: {', '.join(areas)}. They are written for the "
          "starter config; regenerate rules and dashboards from yours with `crmpulse alerts` and "
          "`crmpulse dashboards` (docs/deploy.md).")
    return EXIT_OK


def cmd_locustfile(args: argparse.Namespace) -> int:
    from crmpulse.loadtests.run import LOCUSTFILE

    print(LOCUSTFILE)
    return EXIT_OK


def cmd_stack(args: argparse.Namespace) -> int:
    from .stack import Stack, StackPorts

    if args.action is None:
        args.stack_parser.print_help()
        return EXIT_USAGE
    if args.action != "up":
        stack = Stack(Path(args.dir))
        return stack.down() if args.action == "down" else stack.status()
    ports = StackPorts(sandbox=args.sandbox_port, probe=args.probe_port,
                       prometheus=args.prometheus_port, alertmanager=args.alertmanager_port,
                       receiver=args.receiver_port, loadtest=args.loadtest_port)
    return Stack(Path(args.dir), ports).up(
        check_interval=args.check_interval, scrape_interval=args.scrape_interval,
        eval_interval=args.eval_interval, compress=args.compress)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crmpulse", formatter_class=_Formatter,
        description="Load tests, synthetic probes, dashboards and alerts for a CRM.",
        epilog="Exit codes: 0 ok, 1 the run found a problem, 2 bad usage or config.\n"
               "Docs: https://github.com/crmpulse/crmpulse/tree/main/docs (start with README.md).")
    parser.add_argument("--version", action="version", version=f"crmpulse {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", title="verbs")

    def verb(name: str, help_: str, func: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        p = verbs.add_parser(name, help=help_, description=help_, formatter_class=_Formatter)
        p.set_defaults(func=func)
        return p

    p = verb("demo", "the whole story on the sandbox in a few minutes: operations, probes, a load "
             "test, an outage that pages", cmd_demo)
    p.add_argument("--quick", action="store_true",
                   help="only start the sandbox and run every profile operation once")
    p.add_argument("--seed", type=int, default=200, help="contacts to seed the sandbox with")
    p.add_argument("--sync-lag", type=_duration, default="500ms", metavar="DURATION",
                   help="the sandbox's search sync lag")
    p.add_argument("--dir", default=None,
                   help="where the demo keeps its configs, logs and report (default: a new "
                   "temporary folder, named at the end)")

    p = verb("loadtest", "run a load test on Locust: journeys, a load shape, SLO gates, a report; "
             "exit 1 when a gate fails", cmd_loadtest)
    _config_arg(p)
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan (shape, peak users and rate, records, hosts) and send nothing")
    p.add_argument("--workers", type=int, default=0,
                   help="Locust worker processes on this machine (0: one process)")
    p.add_argument("--report-dir", default="crmpulse-report", help="where reports are written")
    p.add_argument("--web", action="store_true", help="open Locust's web UI instead of headless")
    p.add_argument("--metrics-listen", default=None,
                   help="host:port for live Prometheus metrics (default: loadtest.metrics_listen, "
                   "127.0.0.1:9688; 'off' disables)")
    p.add_argument("--duration", type=_duration, default=None, metavar="DURATION",
                   help="stretch the configured shape to this length (e.g. 2m); default: the shape's")
    p.add_argument("--users", type=float, default=1.0, metavar="MULTIPLIER",
                   help="multiply every stage's users (within target.safety.max_users)")
    p.add_argument("--rate", type=float, default=1.0, metavar="MULTIPLIER",
                   help="multiply every stage's target rate (within target.safety.max_rps)")
    p.add_argument("--find-capacity", action="store_true",
                   help="instead of the shape: raise the request rate step by step (doubling, then "
                   "bisecting) within the safety caps and report the highest rate at which every "
                   "gate held, and which gate broke first")
    p.add_argument("--capacity-step", type=_duration, default="10s", metavar="DURATION",
                   help="with --find-capacity: how long each rate is held and judged")
    p.add_argument("--capacity-start", type=float, default=10.0, metavar="RATE",
                   help="with --find-capacity: the first rate, in requests per second")
    p.add_argument("--master", action="store_true",
                   help="run Locust's master of a distributed run; workers join with --worker")
    p.add_argument("--expect-workers", type=int, default=1, metavar="N",
                   help="with --master: start when N workers have joined")
    p.add_argument("--worker", action="store_true",
                   help="run a Locust worker that joins the master at --master-host")
    p.add_argument("--master-host", default="127.0.0.1", help="with --worker: the master's host")
    p.add_argument("--master-port", type=int, default=5557,
                   help="the master's port (with --master: the one it binds)")
    p.add_argument("locust_args", nargs="*", metavar="-- LOCUST_ARGS",
                   help="extra Locust options after -- (options the shape or crmpulse decide, such "
                   "as --run-time, are refused)")

    p = verb("sweep", "find and delete every record crmpulse left on the target: load tests of any "
             "run and sync probes (exact marker match only); exit 1 if one could not be deleted",
             cmd_sweep)
    _config_arg(p)
    p.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    p.add_argument("--older-than", type=_duration, default=None, metavar="DURATION",
                   help="only records created longer ago than this (e.g. 1h)")
    p.add_argument("--run", default=None, metavar="RUN_ID",
                   help="only the records of this load-test run (its id, e.g. 20261129t101500-3f9a1c0b7d2e)")

    p = verb("report", "work with load-test reports: `report compare BASELINE_DIR CANDIDATE_DIR` says "
             "which differences are real and exits 1 on a regression", cmd_report)
    report_actions = p.add_subparsers(dest="action", metavar="ACTION", title="actions")
    p.set_defaults(report_parser=p, action=None)
    compare = report_actions.add_parser(
        "compare", formatter_class=_Formatter, help="compare two runs' report folders",
        description="Compare two load-test runs (their --report-dir folders) operation by operation: "
        "p50/p95/p99 with distribution-free confidence intervals from the HDR histograms, error "
        "ratios (two-proportion z-test) and throughput (Poisson intervals); exit 1 when a "
        "difference is both significant and beyond its tolerance. Writes compare.html, "
        "compare.md and compare.json.")
    compare.add_argument("baseline", help="report folder of the run to compare against")
    compare.add_argument("candidate", help="report folder of the new run")
    compare.add_argument("--out", default="crmpulse-compare", help="where to write the comparison")
    compare.add_argument("--latency-tolerance", type=_percent, default="10%", metavar="PERCENT",
                         help="a percentile regresses when it grows by more than this")
    compare.add_argument("--latency-floor", type=_duration, default="5ms", metavar="DURATION",
                         help="... and by more than this much time")
    compare.add_argument("--error-tolerance", type=float, default=1.0, metavar="POINTS",
                         help="an error ratio regresses when it grows by more than this many points")
    compare.add_argument("--throughput-tolerance", type=_percent, default="10%", metavar="PERCENT",
                         help="throughput regresses when it drops by more than this")
    compare.set_defaults(func=cmd_report, report_parser=p)

    p = verb("alerts", "generate Prometheus rules (SLO burn rates, companions), their promtool "
             "tests, Grafana alert rules and an Alertmanager example", cmd_alerts)
    _config_arg(p)
    p.add_argument("--out", default="out/alerts", help="directory to write to")
    p.add_argument("--kubernetes", action="store_true", help="also write a PrometheusRule")
    p.add_argument("--explain", action="store_true",
                   help="print the detection table (time to page/ticket per outage size) and exit")
    p.add_argument("--compress", type=float, default=1.0, metavar="N",
                   help="divide every alert window by N: for demos and end-to-end tests only "
                   "(no rule tests are written)")

    p = verb("slo", "SLO error budgets from Prometheus: `slo status` prints each SLO's budget "
             "left, burn rates and firing alerts; exit 1 when a budget is spent", cmd_slo)
    slo_actions = p.add_subparsers(dest="action", metavar="ACTION", title="actions")
    p.set_defaults(slo_parser=p, action=None)
    st = slo_actions.add_parser(
        "status", formatter_class=_Formatter, help="budget left, burn rates, firing alerts",
        description="Per SLO of the config: the objective, the error budget left over the SLO "
        "window, the burn rate over both windows of every alert pair, and which alerts fire, read "
        "from Prometheus's HTTP API (the generated recording rules must be loaded). Exit 1 when "
        "any budget is exhausted (a change-freeze gate), 2 when Prometheus cannot be read.")
    _config_arg(st)
    st.add_argument("--prometheus", default=os.environ.get("CRMPULSE_PROMETHEUS_URL",
                                                           "http://127.0.0.1:9090"),
                    help="Prometheus base URL (env CRMPULSE_PROMETHEUS_URL)")
    st.add_argument("--compress", type=float, default=1.0, metavar="N",
                    help="the --compress the rules were generated with (crmpulse stack)")

    p = verb("dashboards", "write the Grafana dashboards (overview, journeys, sync lag, load tests, "
             "exporter health) as JSON", cmd_dashboards)
    _config_arg(p)
    p.add_argument("--out", default="out/dashboards", help="directory to write to")

    p = verb("probe", "run the synthetic-probe exporter: scheduled checks on /metrics, "
             "on-demand probes on /probe", cmd_probe)
    _config_arg(p)
    p.add_argument("--listen", default=os.environ.get("CRMPULSE_PROBE_LISTEN"),
                   help="host:port to serve on (env CRMPULSE_PROBE_LISTEN; "
                   "default: probes.listen from the config, itself 127.0.0.1:9687)")
    p.add_argument("--web-config-file", default=os.environ.get("CRMPULSE_WEB_CONFIG"),
                   help="exporter-toolkit web config: TLS and basic auth for the exporter's own "
                   "endpoints (env CRMPULSE_WEB_CONFIG)")
    p.add_argument("--shard", default=os.environ.get("CRMPULSE_PROBE_SHARD"), metavar="INDEX/COUNT",
                   help="run only this share of the checks and sync pairs, e.g. 2/5; INDEX may be "
                   "a StatefulSet pod name like crmpulse-probe-2 (env CRMPULSE_PROBE_SHARD; "
                   "default: probes.shard from the config)")
    p.add_argument("--check-config", action="store_true", help="validate the config and exit")
    p.add_argument("--sweep-only", action="store_true",
                   help="run the sync pairs' sweeper once (delete marked records older than "
                   "sweep_after), report, and exit")
    p.add_argument("--sweep-older-than", type=_duration, default=None, metavar="DURATION",
                   help="with --sweep-only: override sweep_after (0s deletes every marked record)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    p = verb("stack", "run the whole loop on this machine (sandbox, exporter, Prometheus with the "
             "generated rules, Alertmanager, a webhook receiver): up, down or status", cmd_stack)
    actions = p.add_subparsers(dest="action", metavar="ACTION", title="actions")
    p.set_defaults(stack_parser=p, action=None)
    up = actions.add_parser("up", formatter_class=_Formatter, help="start the stack in --dir",
                            description="Start the sandbox, the exporter, Prometheus with the generated "
                            "rules, Alertmanager and a webhook receiver on loopback; state, configs "
                            "and logs go to --dir.")
    down = actions.add_parser("down", formatter_class=_Formatter, help="stop what `up` started",
                              description="Stop the processes `crmpulse stack up` started from --dir "
                              "(and nothing else).")
    status = actions.add_parser("status", formatter_class=_Formatter,
                                help="show each process and its health; exit 1 if one is down",
                                description="Show each of the stack's processes and its health "
                                "endpoint; exit 1 when one is down.")
    for sub in (up, down, status):
        sub.add_argument("--dir", default=".crmpulse-stack", help="data directory (configs, logs, state)")
    for name, default in (("sandbox", 8085), ("probe", 9687), ("prometheus", 9090),
                          ("alertmanager", 9093), ("receiver", 9095), ("loadtest", 9688)):
        up.add_argument(f"--{name}-port", type=int, default=default, help=f"{name} port")
    up.add_argument("--check-interval", type=_duration, default="10s", metavar="DURATION",
                    help="interval of every check and sync pair")
    up.add_argument("--scrape-interval", type=_duration, default="5s", metavar="DURATION",
                    help="Prometheus scrape interval")
    up.add_argument("--eval-interval", type=_duration, default="5s", metavar="DURATION",
                    help="Prometheus rule evaluation interval")
    up.add_argument("--compress", type=float, default=1.0, metavar="N",
                    help="divide alert windows by N so a demo pages and resolves in seconds")

    p = verb("deploy", "write the deploy files (Prometheus, Alertmanager, Grafana provisioning, "
             "Kubernetes, systemd, compose) that ship with crmpulse into a folder", cmd_deploy)
    p.add_argument("--out", default="deploy", help="directory to write to")
    p.add_argument("--force", action="store_true", help="overwrite files that exist")

    p = verb("locustfile", "print the path of crmpulse's locustfile, for `locust -f` "
             "(e.g. locust -f $(crmpulse locustfile) --crmpulse-config crmpulse.yaml)", cmd_locustfile)

    p = verb("sandbox", "serve the sandbox CRM on loopback (the default target)", cmd_sandbox)
    p.add_argument("--host", default=os.environ.get("CRMPULSE_SANDBOX_HOST", "127.0.0.1"),
                   help="address to listen on (env CRMPULSE_SANDBOX_HOST)")
    p.add_argument("--port", type=int,
                   default=int(os.environ.get("CRMPULSE_SANDBOX_PORT", DEFAULT_SANDBOX_PORT)),
                   help="port, 0 for any free one (env CRMPULSE_SANDBOX_PORT)")
    p.add_argument("--db", default=":memory:", help="SQLite file, or :memory:")
    p.add_argument("--dialect", choices=("native", "salesforce", "hubspot", "dynamics"),
                   default="native", help="whose API to serve (docs/sandbox.md)")
    p.add_argument("--seed", type=int, default=200, help="realistic contacts to create at start")
    p.add_argument("--sync-lag", type=_duration, default="500ms", metavar="DURATION",
                   help="delay before a change reaches the search index")
    p.add_argument("--token-ttl", type=_duration, default="1h", metavar="DURATION",
                   help="lifetime of issued OAuth2 tokens")
    p.add_argument("--admin-token",
                   default=os.environ.get("CRMPULSE_SANDBOX_ADMIN_TOKEN", "sandbox-admin"),
                   help="token for the admin API (env CRMPULSE_SANDBOX_ADMIN_TOKEN)")
    p.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", help="private key for --tls-cert (PEM)")

    p = verb("check-config", "validate a config file and its profile without running anything",
             cmd_check_config)
    _config_arg(p, positional=True)

    p = verb("smoke", "run every operation of the config's profile once against its target, "
             "then delete what was created", cmd_smoke)
    _config_arg(p)

    p = verb("call", "call one profile operation against the config's target and show the result",
             cmd_call)
    _config_arg(p)
    p.add_argument("operation", help="operation name, e.g. get_contact")
    p.add_argument("variables", nargs="*", metavar="NAME=VALUE", help="template variables")
    p.add_argument("--pages", type=int, default=1, help="pages to follow when it paginates")
    p.add_argument("--keep", action="store_true", help="keep records the call created")

    p = verb("init", "write a commented starter crmpulse.yaml for the sandbox, or for a CRM preset",
             cmd_init)
    p.add_argument("path", nargs="?", default="crmpulse.yaml", help="where to write it")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="start from a built-in CRM profile: its auth block and secret references")
    p.add_argument("--sandbox", action="store_true",
                   help="with --preset: point the target at `crmpulse sandbox --dialect ...` on "
                   "loopback, to try the preset before your CRM")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    # every secret the config resolves (and every token fetched) is masked in whatever a
    # verb prints or logs, the exporter's start-up line and log included
    with redact.guard_outputs():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args))
    except ConfigError as exc:
        for problem in exc.problems:
            print(str(problem), file=sys.stderr)
        count = len(exc.problems)
        print(f"crmpulse: {count} problem{'s' if count != 1 else ''} found", file=sys.stderr)
        return EXIT_USAGE
    except CrmpulseError as exc:
        print(f"crmpulse: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("crmpulse: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`crmpulse alerts --explain | head`): stop quietly, as
        # SIGPIPE stops C tools, and keep the interpreter's final flush from failing too
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as exc:  # a bug: one line by default, the traceback on request
        if os.environ.get("CRMPULSE_DEBUG"):
            import traceback

            traceback.print_exc()  # inside the redacting guard, unlike Python's own hook
            return EXIT_FAILED
        print(f"crmpulse: internal error: {exc.__class__.__name__}: {exc} "
              "(set CRMPULSE_DEBUG=1 for the traceback, and please report it)", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
