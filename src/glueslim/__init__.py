"""glueslim: fine-tune, compress, evaluate and profile BERT-family models on GLUE."""

__version__ = "0.1.0"
