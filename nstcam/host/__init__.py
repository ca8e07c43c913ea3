"""The machine the app runs on: the user's folders and cache, allocator tuning, frame-rate timing.
The lowest layer: it imports nothing else of nstcam."""
