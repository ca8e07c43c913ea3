"""`python -m trainer.report`."""
from trainer.report.cli import main

raise SystemExit(main())
