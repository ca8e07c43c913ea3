"""`python -m nstcam.measure.bench`."""
from nstcam.measure.bench.cli import main

raise SystemExit(main())
