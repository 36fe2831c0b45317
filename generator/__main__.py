"""``python -m generator`` runs the shopsim CLI."""

from generator.cli import main

raise SystemExit(main())
