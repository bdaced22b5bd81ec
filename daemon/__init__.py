"""The MidiDrumiGen daemon side: model, training, generation, the ZeroMQ server and the CLI."""

__version__ = "0.1.0"
