"""vidpeft: parameter-efficient fine-tuning of video action-recognition models."""
__version__ = "0.1.0"
