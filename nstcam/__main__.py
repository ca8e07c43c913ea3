"""`python -m nstcam`: the same as the `nstcam` command."""
from nstcam.cli import main

raise SystemExit(main())
