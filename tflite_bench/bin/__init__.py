"""tflite_bench binaries."""
