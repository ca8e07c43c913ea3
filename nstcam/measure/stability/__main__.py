"""`python -m nstcam.measure.stability`."""
from nstcam.measure.stability.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
