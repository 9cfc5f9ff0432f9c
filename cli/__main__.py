"""`python -m cli ...` runs the `newsflash` command."""

from cli.main import main

raise SystemExit(main())
