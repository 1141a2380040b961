"""Reading and checking ``.tflite`` flatbuffers without TensorFlow."""
