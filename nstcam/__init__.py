"""nstcam: real-time webcam neural style transfer."""
