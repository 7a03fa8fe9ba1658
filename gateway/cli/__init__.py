"""The ``maintenance-gateway`` command: its grammar (parser, arguments), its subcommands (commands),
what they print (output), and the way to a running gateway (client, waiting)."""
