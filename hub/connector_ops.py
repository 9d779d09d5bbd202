"""``hub connectors``: validate and apply the definitions in connectors/ to a Kafka Connect cluster.

Against the local stack the endpoints come from the stack; against an existing cluster
(``HUB_CONNECT_URL``) from ``HUB_SOURCE_HOSTS`` and ``HUB_CONNECT_SECRETS_FILE``.
"""

from __future__ import annotations

from rich.console import Console

from hub.connect_client import ConnectClient
from hub.connectors import ConnectorDefinition, Endpoint, load_definitions, render_config
from hub.errors import StackError
from hub.settings import HubSettings
from hub.topics import registry


def endpoint_for(settings: HubSettings, definition: ConnectorDefinition) -> Endpoint:
    """Where Connect reaches ``definition``'s database; ``StackError`` when it is not configured."""
    if settings.connect_url is None:
        from hub.stack.manager import Stack

        return Stack(settings).endpoint(definition.system)
    address = settings.source_hosts.get(definition.system)
    if address is None or settings.connect_secrets_file is None:
        raise StackError(
            f"{definition.system}: against an existing Connect cluster set HUB_SOURCE_HOSTS "
            f'(e.g. {{"{definition.system}": "db.internal:5432"}}) and HUB_CONNECT_SECRETS_FILE'
        )
    host, _, port = address.rpartition(":")
    return Endpoint(host, int(port), settings.connect_secrets_file, settings.bootstrap)


def validate(
    client: ConnectClient, definition: ConnectorDefinition, config: dict[str, str]
) -> None:
    """Connect's own validation; ``StackError`` listing the errors per key."""
    errors = client.validate(
        definition.connector.class_, {**config, "name": definition.connector.name}
    )
    if errors:
        listing = "\n".join(f"  {key}: {'; '.join(messages)}" for key, messages in errors.items())
        raise StackError(f"Kafka Connect rejects {definition.connector.name}:\n{listing}")


def apply(
    settings: HubSettings, systems: tuple[str, ...], dry_run: bool, console: Console
) -> dict[str, str]:
    """Validate every selected definition, then (unless ``dry_run``) apply it idempotently.

    Returns connector name → created/updated/unchanged/valid. Raises ``StackError``.
    """
    definitions = load_definitions()
    unknown = set(systems) - set(definitions)
    if unknown:
        raise StackError(f"no definition in connectors/ for {', '.join(sorted(unknown))}")
    client = ConnectClient(settings.connect)
    verdicts: dict[str, str] = {}
    for system, definition in definitions.items():
        if systems and system not in systems:
            continue
        config = render_config(definition, endpoint_for(settings, definition), registry())
        validate(client, definition, config)
        name = definition.connector.name
        verdicts[name] = "valid" if dry_run else client.apply(name, config)
        console.print(f"[green]✓[/] {name}: {verdicts[name]}")
    return verdicts
