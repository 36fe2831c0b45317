"""pytest plugin for staging suites (registered as the ``shopsim`` pytest11 entry point)."""
