"""The ``maintenance-gateway`` command: its subcommands and the client for a running
gateway's admin API."""
