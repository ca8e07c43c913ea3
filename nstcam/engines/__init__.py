"""Style engines: the torch engine (CUDA/CPU), its child process, the torch-free ONNX Runtime engine and
its exporter. An engine turns a frame into a stylized frame and knows no sources or sinks."""
