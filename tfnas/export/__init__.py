"""Export: TFLite conversion, quantization and verification."""
