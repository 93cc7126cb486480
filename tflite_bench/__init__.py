"""tflite_bench: measure .tflite latency on the host (LiteRT) or an Android device (adb)."""
