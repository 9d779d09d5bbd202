"""The ``hub`` command line."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson
from rich.console import Console
from rich.markup import escape

from hub.errors import REASONS, RegistryError, StackError
from hub.settings import get_settings

if TYPE_CHECKING:
    from hub.stack.manager import Stack

err = Console(stderr=True)


class HubGroup(click.Group):
    """Every command's operational errors end as one line and a non-zero exit, never a traceback:
    the message says what exists or what to do."""

    def invoke(self, ctx: click.Context) -> object:
        from requests import RequestException

        from hub.connect_client import ConnectError

        try:
            return super().invoke(ctx)
        except (StackError, RegistryError, ConnectError) as exc:
            err.print(f"[bold red]✗[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            sys.exit(1)
        except RequestException as exc:
            err.print(f"[bold red]✗[/] cannot reach {exc.request.url if exc.request else 'the service'}: "
                      f"{type(exc).__name__}; is the stack up ('hub stack status')?")  # fmt: skip
            sys.exit(1)


@click.group(cls=HubGroup)
def main() -> None:
    """Unified Commerce CDC Hub: sources → Debezium/Kafka Connect → Kafka → hub → unified topics."""


@main.group()
def stack() -> None:
    """The local stack (PostgreSQL, Kafka, Kafka Connect + Debezium) as local processes."""


def _stack() -> Stack:
    from hub.stack.manager import Stack

    return Stack(get_settings(), err)


@stack.command()
def up() -> None:
    """Start everything that is not running and register the connectors (idempotent)."""
    try:
        _stack().up()
    except StackError as exc:
        err.print(f"[bold red]✗ {exc}[/]")
        sys.exit(1)


@stack.command()
def fetch() -> None:
    """Fetch Kafka, Connect and Debezium jars from Maven Central into the cache (once)."""
    from hub.stack.runtime import ensure_runtime

    try:
        runtime = ensure_runtime(get_settings(), err)
    except StackError as exc:
        err.print(f"[bold red]✗ {exc}[/]")
        sys.exit(1)
    err.print(f"[green]✓[/] runtime in {runtime.root}")


@stack.command()
@click.option(
    "--purge", is_flag=True, help="Also delete the state directory (data, logs, secrets)."
)
def down(purge: bool) -> None:
    """Stop everything the stack started."""
    _stack().down(purge=purge)


@stack.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """Each component and connector with its state."""
    s = _stack()
    if as_json:
        click.echo(json.dumps(s.status(), indent=2))
    else:
        s.print_status()


@stack.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object for other tools.")
def env(as_json: bool) -> None:
    """The endpoints: Kafka bootstrap, Connect URL, one DSN per source database."""
    endpoints = _stack().env()
    if as_json:
        click.echo(json.dumps(endpoints))
        return
    click.echo(f"HUB_KAFKA_BOOTSTRAP={endpoints['kafka_bootstrap']}")
    click.echo(f"HUB_CONNECT_URL={endpoints['connect_url']}")
    for system, dsn in endpoints["sources"].items():
        click.echo(f"HUB_{system.upper()}_DSN={dsn}")


@main.group()
def connectors() -> None:
    """The connector definitions in connectors/, on a Kafka Connect cluster."""


@connectors.command("apply")
@click.argument("systems", nargs=-1)
@click.option("--dry-run", is_flag=True, help="Only ask Connect to validate; change nothing.")
def connectors_apply(systems: tuple[str, ...], dry_run: bool) -> None:
    """Validate, then create or update each connector (idempotent)."""
    from requests import RequestException

    from hub.connect_client import ConnectError
    from hub.connector_ops import apply

    try:
        apply(get_settings(), systems, dry_run, err)
    except (StackError, ConnectError, RequestException) as exc:
        err.print(f"[bold red]✗ {exc}[/]")
        sys.exit(1)


@main.command()
@click.option("--loglevel", default="info", show_default=True, type=click.Choice(
    ["debug", "info", "warning", "error", "critical"], case_sensitive=False))  # fmt: skip
@click.option("--child", is_flag=True, hidden=True, help="Run the worker itself, unsupervised.")
def worker(loglevel: str, child: bool) -> None:
    """Run the Faust worker: raw CDC topics → canonical records on the unified topics.

    It runs in a child process, started afresh when it asks to (see hub/worker/supervisor.py).
    """
    if child:
        from hub.worker.app import run_worker

        run_worker(get_settings(), loglevel)
        return
    from hub.worker.supervisor import supervise

    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] [supervisor] %(message)s")
    argv = [sys.executable, "-m", "hub", "worker", "--child", "--loglevel", loglevel]
    sys.exit(supervise(argv, stop_timeout=get_settings().worker_stop_timeout + 5))


@main.command()
@click.option("--host", default=None, help="Address to bind (default: HUB_HOST, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default: HUB_API_PORT, 18080).")
@click.option(
    "--openapi",
    "openapi_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the OpenAPI document to this file and exit.",
)
def api(host: str | None, port: int | None, openapi_file: Path | None) -> None:
    """Serve the HTTP API, the change stream and the dashboard over the unified topics.

    Reads the topics at start (503 with Retry-After until it has caught up), then keeps
    current. Routes under /v1 (see /docs); the dashboard at /dashboard; metrics at /metrics.
    """
    settings = get_settings()
    if openapi_file is not None:
        from hub.api.spec import write_openapi

        write_openapi(settings, openapi_file)
        return
    from hub.api import serve

    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] [api] %(message)s")
    serve(settings, host or settings.host, port or settings.api_port)


@main.command()
@click.argument("topic_ids", nargs=-1, required=True)
@click.option("--from-beginning", is_flag=True, help="Start at the oldest record, not the newest.")
@click.option(
    "--max", "limit", type=click.IntRange(min=0), default=0,
    help="Stop after this many records (0: never).",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="One JSON line per record.")
def tail(topic_ids: tuple[str, ...], from_beginning: bool, limit: int, as_json: bool) -> None:
    """Print records of declared topics as they arrive (Ctrl-C to stop)."""
    from hub.tail import tail as run_tail

    run_tail(get_settings(), topic_ids, from_beginning, limit, as_json)


@main.command()
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=5.0,
              show_default=True, help="Sales per second.")  # fmt: skip
@click.option("--count", type=click.IntRange(min=0), default=0,
              help="Stop after this many sales (0: never).")  # fmt: skip
@click.option("--seed", type=int, default=7, show_default=True)
def simulate(rate: float, count: int, seed: int) -> None:
    """Ring up sales in the POS database: ticket + lines + stock decrements, one transaction each."""
    from hub.simulator import run_sales

    run_sales(get_settings(), rate, count, seed)


@main.command()
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=2.0,
              show_default=True, help="Sales per second.")  # fmt: skip
@click.option("--keep-stack", is_flag=True, help="Leave the stack running after Ctrl-C.")
def demo(rate: float, keep_stack: bool) -> None:
    """Stack up, worker, sales simulator, and the unified topics live, until Ctrl-C."""
    from hub.demo import run_demo

    sys.exit(run_demo(get_settings(), rate, keep_stack))


@main.command()
@click.option(
    "--rates",
    default="500,1000,2000,5000,8000",
    show_default=True,
    help="Offered load per step, in row changes per second (comma-separated).",
)
@click.option("--warmup", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Seconds per step.")  # fmt: skip
@click.option("--measure", type=click.FloatRange(min=0, min_open=True), default=30.0,
              show_default=True, help="Seconds per step.")  # fmt: skip
@click.option("--series", default="SUT,BL4,BL3,BL2b,BL2a", show_default=True,
              help="Which of the hub (SUT) and the baselines to run (comma-separated).")  # fmt: skip
@click.option("--ramp/--no-ramp", default=True, show_default=True,
              help="After the SUT's steps, bisect for its highest sustainable rate.")  # fmt: skip
@click.option("--replay", type=click.IntRange(min=0), default=0, show_default=True,
              help="Then record this many changes on the raw topics and time 1 and 2 workers "
                   "draining them (0: no replay).")  # fmt: skip
@click.option("--identity", type=click.IntRange(min=1), default=None,
              help="Instead: the identity stage alone (no stack) on this many synthetic customer "
                   "records: first load, changes/s, memory, precision and recall.")  # fmt: skip
@click.option("--through-stack", is_flag=True,
              help="With --identity: also insert them into the running stack's source databases "
                   "and time until each is linked to a golden customer (a worker must run).")  # fmt: skip
@click.option("--api", "api_load", is_flag=True,
              help="Instead: hub api under read load (availability by article) for --measure "
                   "seconds while the pipeline runs at the first of --rates, and the change "
                   "stream's latency from a till's commit.")  # fmt: skip
@click.option("--http-rate", type=click.IntRange(min=1), default=2000, show_default=True,
              help="With --api: availability requests/s offered (an open loop).")  # fmt: skip
@click.option("--seed", type=int, default=2026, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench/results"),
              show_default=True)  # fmt: skip
def bench(
    rates: str, warmup: float, measure: float, series: str, ramp: bool, replay: int,
    identity: int | None, through_stack: bool, api_load: bool, http_rate: int, seed: int,
    out: Path,
) -> None:  # fmt: skip
    """Benchmark the hub and its baselines on the stack the settings point at: throughput,
    end-to-end latency, CPU and memory per process. `make bench` gives it a fresh stack of its own."""
    from hub.bench.report import write
    from hub.bench.run import SERIES, Bench, Timing

    if through_stack and identity is None:
        raise click.UsageError("--through-stack goes with --identity N")
    if identity is not None:
        _bench_identity(identity, seed, out, through_stack)
        return

    wanted = [name.strip() for name in series.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(SERIES))
    if unknown:
        raise click.BadParameter(f"unknown series {unknown}; choose from {list(SERIES)}")
    try:
        steps = [int(rate) for rate in rates.split(",")]
    except ValueError:
        raise click.BadParameter(f"{rates!r}: whole changes per second, comma-separated",
                                 param_hint="--rates") from None  # fmt: skip
    if not steps or min(steps) <= 0:
        raise click.BadParameter(f"{rates!r}: rates above 0", param_hint="--rates")
    if api_load:
        _bench_api(steps[0], http_rate, measure, seed, out)
        return
    result = Bench(get_settings(), err, seed, Timing(warmup, measure)).run(
        steps, wanted, ramp, replay
    )
    paths = write(result, out)
    err.print(f"[green]✓[/] results: {paths['json']}, {paths['md']} and {paths['png']}")
    print(paths["md"].read_text())


def _bench_identity(records: int, seed: int, out: Path, through_stack: bool) -> None:
    from hub.bench.identity import first_load, markdown, measure
    from hub.customers import load_rules
    from hub.stack.manager import Stack

    with err.status(f"identity stage: {records:,} synthetic customer records, then "
                    f"{records // 5:,} changes…"):  # fmt: skip
        result = measure(load_rules(), records, records // 5, seed)
    if through_stack:
        settings = get_settings()
        with err.status(f"inserting {records:,} customers into the sources, waiting for their "
                        "golden customers…"):  # fmt: skip
            result["through_stack"] = first_load(Stack(settings, err), settings.bootstrap,
                                                 records, seed)  # fmt: skip
    _write_result(out / "identity", f"identity-{records}", result, markdown(result))


def _bench_api(rate: int, http_rate: int, duration: float, seed: int, out: Path) -> None:
    from hub.bench.api import markdown, measure

    result = measure(get_settings(), err, rate, http_rate, duration, seed)
    _write_result(out / "api", f"api-{rate}", result, markdown(result))


def _write_result(folder: Path, stem: str, result: dict[str, Any], text: str) -> None:
    """A benchmark's result as JSON and Markdown in ``folder``, stamped; the Markdown printed."""
    from datetime import UTC, datetime

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%z")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}-{stamp}.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    (folder / f"{stem}-{stamp}.md").write_text(text)
    err.print(f"[green]✓[/] results in {folder}")
    print(text)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="The report as one JSON object.")
@click.option("--wait", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="Seconds to let in-flight changes arrive before reporting differences.")  # fmt: skip
def reconcile(as_json: bool, wait: float) -> None:
    """Compare the source databases with the unified topics; exit 0 only when they agree."""
    from hub.reconcile import print_report
    from hub.reconcile import reconcile as run

    report = run(get_settings(), wait)
    if as_json:
        click.echo(json.dumps(report.as_json(), default=str))
    else:
        print_report(report, Console())
    sys.exit(0 if report.agree else 1)


@main.command("repair")
@click.argument("keys", nargs=-1)
@click.option("--differing", is_flag=True, help="Every key `hub reconcile` finds differing.")
@click.option("--wait", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Seconds to wait for the worker to republish them.")  # fmt: skip
def repair_keys(keys: tuple[str, ...], differing: bool, wait: float) -> None:
    """Read the source rows behind unified KEYS again and republish the truth, whatever the keys
    were marked with (e.g. 3760000000017@store:PAR01). Exit 0 once the topics show them all."""
    from hub.repair import repair

    if bool(keys) == differing:
        raise click.UsageError("give the KEYS to repair, or --differing (not both)")
    sys.exit(0 if repair(get_settings(), list(keys), differing, wait, err) else 1)


@main.group()
def dlq() -> None:
    """The dead-letter topic: what failed, why, and replay after a fix."""


@dlq.command("list")
@click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True,
              help="Newest N (0: all).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="One JSON line per dead letter.")
def dlq_list(limit: int, as_json: bool) -> None:
    """Dead letters with their source topic, partition, offset and reason."""
    from hub.dlq import show

    show(get_settings(), limit, as_json)


@dlq.command("replay")
@click.option("--reason", type=click.Choice(sorted(REASONS)),
              help="Only dead letters with this reason (e.g. bad_value).")  # fmt: skip
@click.option("--topic", help="Only dead letters from this raw topic.")
@click.option("--dry-run", is_flag=True, help="Count what would be replayed.")
@click.option("--again", is_flag=True, help="Also letters that failed again after a replay.")
def dlq_replay(reason: str | None, topic: str | None, dry_run: bool, again: bool) -> None:
    """Send dead letters back to their original topic, each once (progress kept in Kafka)."""
    from hub.dlq import replay
    from hub.topics import registry

    raw = sorted(spec.name for spec in registry().topics.values() if spec.kind == "raw")
    if topic is not None and topic not in raw:
        raise click.BadParameter(f"{topic!r} is no raw topic; declared: {', '.join(raw)}",
                                 param_hint="--topic")  # fmt: skip

    replay(get_settings(), reason, topic, dry_run, err, again)


@main.group()
def stock() -> None:
    """Available-to-sell: the stock network and the figures it makes."""


@stock.command("check")
def stock_check() -> None:
    """Validate the stock network file and show what it declares."""
    from hub.stock import load_network

    network = load_network()
    console = Console()
    console.print(f"[green]✓[/] {get_settings().stock_network}: version {network.version} "
                  f"({network.digest}), {len(network.spec.locations)} locations")  # fmt: skip
    for name, group in sorted(network.groups.items()):
        console.print(f"  group [bold]{name}[/] (channel {group.channel}): "
                      f"{', '.join(sorted(group.members))}", highlight=False)  # fmt: skip
    for rule in network.spec.safety:
        console.print(f"  safety [bold]{rule.name}[/]: {rule.units} units at "
                      f"{', '.join(network.select(rule))}"
                      f"{' for ' + ', '.join(rule.channels) if rule.channels else ''}",
                      highlight=False)  # fmt: skip
    for alert in network.spec.alerts:
        console.print(f"  alert [bold]{alert.name}[/]: {alert.kind} on {alert.scope} figures, "
                      f"threshold {alert.threshold}, band {alert.band}", highlight=False)  # fmt: skip


@stock.command("explain")
@click.argument("gtin")
@click.option("--location", help="One location's figure, e.g. store:PAR01.")
@click.option("--group", help="One group's figure, e.g. web-fulfilment.")
@click.option("--json", "as_json", is_flag=True, help="The records as JSON, for scripts.")
def stock_explain(gtin: str, location: str | None, group: str | None, as_json: bool) -> None:
    """An article's availability now, and every number behind it (from unified.availability)."""
    from hub.stock import chosen, print_explanation, read_figures

    if location and group:
        raise click.UsageError("--location or --group, not both")
    figures = chosen(read_figures(get_settings(), gtin), gtin, location, group)
    if as_json:
        click.echo(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())
    else:
        print_explanation(Console(), figures)
    if not figures:
        asked = location or (f"group {group}" if group else "any location or group")
        click.echo(f"no availability of {gtin} at {asked} on unified.availability", err=True)
        sys.exit(1)


@main.group()
def customer() -> None:
    """Golden customers: one person across every system (identity resolution)."""


@customer.command("check")
def customer_check() -> None:
    """Validate the identity rules file and show what it declares."""
    from hub.customers import load_rules

    rules = load_rules()
    console = Console()
    spec = rules.spec
    console.print(f"[green]✓[/] {get_settings().identity_rules}: version {spec.version}, "
                  f"merge-storm limit {spec.max_block} records per key")  # fmt: skip
    for rule in spec.match:
        console.print(f"  match [bold]{rule.name}[/]: " + " and ".join(
            f"{c.field} {c.compare}{f' ≥ {c.min}' if c.min else ''}" for c in rule.when),
            highlight=False)  # fmt: skip
    for negative in spec.apart:
        console.print(f"  apart [bold]{negative.name}[/]: sharing {' or '.join(negative.shared)}"
                      f" with {negative.differ.field} below {negative.differ.below}",
                      highlight=False)  # fmt: skip
    console.print("  survivorship: " + ", ".join(
        f"{name} {policy}" for name, policy in spec.survivorship.fields.items())
        + f"; trust {' > '.join(spec.survivorship.trust)}", highlight=False)  # fmt: skip


@customer.command("explain")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="The explanation as JSON, for scripts.")
def customer_explain(ref: str, as_json: bool) -> None:
    """Why the customer of REF (a record ref like shop:17, or a golden id) is who it is: members,
    the rules that link them, what was kept apart and why, manual decisions, each field's source."""
    from hub.customers import explanation, load_rules, print_explanation

    try:
        found = explanation(get_settings(), load_rules(), ref)
    except KeyError as exc:
        click.echo(str(exc.args[0]), err=True)
        sys.exit(1)
    if as_json:
        click.echo(orjson.dumps(found, option=orjson.OPT_INDENT_2).decode())
    else:
        print_explanation(Console(), found)


def _decide(kind: str, a: str, b: str, why: str, who: str | None) -> None:
    import getpass

    from hub.customers import decide

    if a == b:
        raise click.BadParameter("two different records", param_hint="A B")
    for ref in (a, b):
        if ":" not in ref or ref.startswith("g-"):
            raise click.BadParameter(f"{ref!r}: a record ref like shop:17 or pos:LC00000042",
                                     param_hint="A B")  # fmt: skip
    decision = decide(get_settings(), kind, a, b, who or getpass.getuser(), why)
    err.print(f"[green]✓[/] {kind} {a} {b} recorded by {decision.who} at {decision.at}; the "
              "identity stage applies it as it reads it (see hub customer explain)")  # fmt: skip


@customer.command("link")
@click.argument("a")
@click.argument("b")
@click.option("--why", required=True, help="The reason, kept in the audit trail.")
@click.option("--who", help="Who decides (default: the OS user).")
def customer_link(a: str, b: str, why: str, who: str | None) -> None:
    """Force records A and B into one customer (audited; survives replays and rule changes)."""
    _decide("link", a, b, why, who)


@customer.command("unlink")
@click.argument("a")
@click.argument("b")
@click.option("--why", required=True, help="The reason, kept in the audit trail.")
@click.option("--who", help="Who decides (default: the OS user).")
def customer_unlink(a: str, b: str, why: str, who: str | None) -> None:
    """Keep records A and B apart for good, whatever the rules say (audited)."""
    _decide("unlink", a, b, why, who)


@customer.command("erase")
@click.argument("ref")
@click.option("--why", required=True, help="The reason (e.g. the request's reference), audited.")
@click.option("--who", help="Who asks (default: the OS user).")
def customer_erase(ref: str, why: str, who: str | None) -> None:
    """Erase the customer of REF (a golden id or any record ref) everywhere the hub writes, and
    keep them from coming back until their source deletes the rows (README, 'Erasure')."""
    import getpass

    from hub.customers import erase

    if ":" not in ref and not ref.startswith("g-"):
        raise click.BadParameter(f"{ref!r}: a golden id (g-…) or a record ref like shop:17",
                                 param_hint="REF")  # fmt: skip
    try:
        erasure = erase(get_settings(), ref, who or getpass.getuser(), why)
    except KeyError as exc:
        click.echo(str(exc.args[0]), err=True)
        sys.exit(1)
    err.print(f"[green]✓[/] erasure of {ref} asked by {erasure.who} at {erasure.at}: the identity "
              "stage tombstones the customer's records, links and golden record and publishes an "
              "erasure event on unified.customer.erasures")  # fmt: skip


@main.group()
def schemas() -> None:
    """The JSON Schemas under schemas/, generated from the canonical models."""


@schemas.command("write")
def schemas_write() -> None:
    """Regenerate the JSON Schema files from the models."""
    from hub.schema_files import write_all

    for path in write_all():
        click.echo(f"wrote {path}")


@main.group()
def secrets() -> None:
    """Source passwords for Kafka Connect, kept in the Connect workers' secrets file."""


@secrets.command("set")
@click.argument("key")
def secrets_set(key: str) -> None:
    """Set KEY (a definition's password_secret, e.g. wms.password) from stdin or a hidden prompt.

    The value never goes on the command line (shell history, process list); `hub stack up` keeps
    it. Restart the system's connector to use a changed password.
    """
    from hub.connector_ops import secrets_file
    from hub.connectors import load_definitions
    from hub.stack.secrets import write_properties

    named = {d.connection.password_secret: s for s, d in load_definitions().items()}
    if key not in named:
        raise click.BadParameter(
            f"no definition names {key!r} as its password_secret; "
            f"defined: {', '.join(sorted(named)) or 'none'}",
            param_hint="KEY",
        )
    if sys.stdin.isatty():
        value = click.prompt(f"Password for {named[key]}", hide_input=True,
                             confirmation_prompt=True, err=True)  # fmt: skip
    else:
        value = sys.stdin.read().rstrip("\r\n")
    if not value:
        raise click.BadParameter("an empty password", param_hint="stdin")
    path = secrets_file(get_settings())
    path.parent.mkdir(parents=True, exist_ok=True)
    write_properties(path, {key: value})
    err.print(f"[green]✓[/] {key} set in {path}")


@secrets.command("list")
def secrets_list() -> None:
    """The keys the secrets file holds (never their values), and the definitions that need them."""
    from hub.connector_ops import secrets_file
    from hub.connectors import load_definitions
    from hub.stack.secrets import read_property_keys

    path = secrets_file(get_settings())
    held = set(read_property_keys(path))
    for system, definition in sorted(load_definitions().items()):
        key = definition.connection.password_secret
        click.echo(f"{system:<10} {key:<24} {'set' if key in held else 'MISSING'}")


@main.group()
def topics() -> None:
    """The topics declared in the topic registry, on the Kafka cluster."""


@topics.command("apply")
@click.option(
    "--check", is_flag=True, help="Create nothing: exit 1 if a topic is missing or differs."
)
def topics_apply(check: bool) -> None:
    """Create every declared topic that is missing and check the others (partitions, configs)."""
    from hub.kafka_io import apply_topics
    from hub.topics import registry

    report = apply_topics(get_settings().bootstrap, registry().topics.values(), create=not check)
    for name in report.created:
        err.print(f"[green]✓[/] {name}: created")
    for name in report.missing:
        err.print(f"[red]✗[/] {name}: missing")
    for name, problem in report.differs.items():
        err.print(f"[red]✗[/] {name}: {problem}")
    err.print(f"{report.ok} declared topics as declared, {len(report.created)} created, "
              f"{len(report.missing) + len(report.differs)} not")  # fmt: skip
    sys.exit(1 if report.missing or report.differs else 0)
