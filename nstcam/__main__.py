"""`python -m nstcam`: the same as the `nstcam` command."""
import multiprocessing

from nstcam.cli import main

multiprocessing.freeze_support()  # a frozen app's engine process re-enters here: run the child, not the CLI
raise SystemExit(main())
