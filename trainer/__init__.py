"""Neural style transfer algorithms: perceptual losses, Gatys optimisation, fast TransformerNet training.

This package never imports `nstcam`; the app depends on it, not the other way round.
"""
