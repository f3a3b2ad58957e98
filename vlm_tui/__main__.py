"""`python -m vlm_tui` is the `vlm-tui` command."""

from vlm_tui.cli import main

raise SystemExit(main())
