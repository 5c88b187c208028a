"""nerwin: a window-classifier named-entity tagger with hand-derived gradients."""

__version__ = "0.1.0"
