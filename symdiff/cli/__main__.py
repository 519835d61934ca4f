"""``python -m symdiff.cli ...``: the same as ``symdiff ...``."""
from . import main

raise SystemExit(main())
