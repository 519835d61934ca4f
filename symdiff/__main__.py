"""``python -m symdiff ...``: the same command line as the ``symdiff`` console script."""
from .cli import main

raise SystemExit(main())
