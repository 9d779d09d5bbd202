"""``hub connectors``: validate and apply the definitions in connectors/ to a Kafka Connect cluster.

Against the local stack the built-in systems' endpoints come from the stack; any system's may come
from its definition (``connection.hostname``/``port``) or from ``HUB_SOURCE_HOSTS``; against an
existing cluster (``HUB_CONNECT_URL``) the secrets file is ``HUB_CONNECT_SECRETS_FILE``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from rich.console import Console

from hub.connect_client import ConnectClient
from hub.connectors import (
    ConnectorDefinition,
    Endpoint,
    SinkDefinition,
    load_definitions,
    load_sinks,
    render_config,
    render_sink_config,
)
from hub.errors import StackError
from hub.settings import HubSettings
from hub.topics import registry


def endpoint_for(settings: HubSettings, definition: ConnectorDefinition) -> Endpoint:
    """Where Connect reaches ``definition``'s database and finds its secrets file.

    The host and port: ``HUB_SOURCE_HOSTS`` for the system, else the definition's
    ``connection.hostname``/``port``, else (local stack only) the stack's own server for a
    built-in system. The secrets file: ``HUB_CONNECT_SECRETS_FILE`` against an existing Connect
    cluster, the stack's own otherwise. ``StackError`` says what to set when one is missing.
    """
    system, conn = definition.system, definition.connection
    local = None
    if settings.connect_url is None:
        from hub.stack.manager import Stack

        local = Stack(settings)
    address = settings.source_hosts.get(system)
    if address is not None:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise StackError(f'HUB_SOURCE_HOSTS["{system}"] is {address!r}: write it host:port')
        hostname, port_number = host, int(port)
    elif conn.hostname is not None and conn.port is not None:
        hostname, port_number = conn.hostname, conn.port
    elif local is not None and system in local.sources:
        built_in = local.endpoint(system)
        hostname, port_number = conn.hostname or built_in.hostname, conn.port or built_in.port
    else:
        raise StackError(
            f"{system}: where is its database? Set connection.hostname and connection.port in "
            f'its definition, or HUB_SOURCE_HOSTS=\'{{"{system}": "db.internal:5432"}}\''
        )
    bootstrap = local.kafka.bootstrap if local is not None else settings.bootstrap
    return Endpoint(hostname, port_number, secrets_file(settings), bootstrap)


def secrets_file(settings: HubSettings) -> Path:
    """The Connect workers' secrets file: the local stack's, or ``HUB_CONNECT_SECRETS_FILE``
    against an existing Connect cluster (``StackError`` when that is not set)."""
    if settings.connect_url is None:
        from hub.stack.secrets import StackSecrets

        return StackSecrets(settings.state_dir.resolve()).connect_properties
    if settings.connect_secrets_file is None:
        raise StackError(
            "against an existing Connect cluster set HUB_CONNECT_SECRETS_FILE: the secrets file "
            "the Connect workers read with their FileConfigProvider"
        )
    return settings.connect_secrets_file


def validate(
    client: ConnectClient, definition: ConnectorDefinition, config: dict[str, str]
) -> None:
    """Connect's own validation; ``StackError`` listing the errors per key."""
    validate_config(client, definition.connector.name, config)


def validate_config(client: ConnectClient, name: str, config: dict[str, str]) -> None:
    """Connect's own validation of connector ``name``'s ``config``; ``StackError`` listing the
    errors per key."""
    errors = client.validate(config["connector.class"], {**config, "name": name})
    if errors:
        listing = "\n".join(f"  {key}: {'; '.join(messages)}" for key, messages in errors.items())
        raise StackError(f"Kafka Connect rejects {name}:\n{listing}")


def sink_config(
    settings: HubSettings, sink: SinkDefinition, definitions: Mapping[str, ConnectorDefinition]
) -> dict[str, str]:
    """The Kafka Connect config of ``sink``, writing into its system's database where Connect
    reaches it (``endpoint_for``)."""
    endpoint = endpoint_for(settings, definitions[sink.system])
    return render_sink_config(sink, definitions, endpoint, registry())


def apply(
    settings: HubSettings, systems: tuple[str, ...], dry_run: bool, console: Console
) -> dict[str, str]:
    """Validate every selected definition, then (unless ``dry_run``) apply it idempotently and
    wait until it and its task run.

    Returns connector name → created/updated/unchanged/valid. Raises ``StackError``.
    """
    definitions = load_definitions()
    sinks = load_sinks()
    unknown = set(systems) - set(definitions) - set(sinks)
    if unknown:
        raise StackError(
            f"no definition for {', '.join(sorted(unknown))} in {settings.connectors_dir}; "
            f"defined: {', '.join(sorted(definitions))}"
            + (f"; sinks: {', '.join(sorted(sinks))}" if sinks else "")
        )
    wanted = [
        (definition.connector.name,
         render_config(definition, endpoint_for(settings, definition), registry()))
        for system, definition in definitions.items() if not systems or system in systems
    ] + [
        (name, sink_config(settings, sink, definitions))
        for name, sink in sinks.items()
        if not systems or name in systems or sink.system in systems
    ]  # fmt: skip
    client = ConnectClient(settings.connect)
    verdicts: dict[str, str] = {}
    for name, config in wanted:
        validate_config(client, name, config)
        if dry_run:
            verdicts[name] = "valid"
        else:
            from hub.stack.manager import wait_running

            verdicts[name] = client.apply(name, config)
            with console.status(f"{name}: {verdicts[name]}, waiting until it runs…"):
                wait_running(client, name, timeout=120)
        console.print(f"[green]✓[/] {name}: {verdicts[name]}{'' if dry_run else ', RUNNING'}")
    return verdicts
