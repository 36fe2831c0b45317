"""One module per ``shopsim`` subcommand (see ``generator/cli.py`` for the protocol)."""
