"""Measurement tools, never imported by the app: engine and app benchmarks, the soak test and the
stability report (`python -m nstcam.measure.bench`, `.bench_app`, `.soak`, `.stability`)."""
