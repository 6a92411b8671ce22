"""wordlstm: a next-word predictor built on an LSTM language model written in NumPy."""

__version__ = "0.1.0"
