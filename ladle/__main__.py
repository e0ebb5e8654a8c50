"""`python -m ladle` runs the CLI."""

from ladle.cli import main

raise SystemExit(main())
