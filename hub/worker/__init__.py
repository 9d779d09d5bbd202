"""The Faust runtime around the core: thin agents, the dead-letter boundary, the worker command."""
