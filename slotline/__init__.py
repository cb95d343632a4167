"""Slotline: a real-time voice agent server that answers and places phone calls and books
appointments during the conversation.

One import root: the server is ``slotline.agent``, the vendor adapters and emulators
``slotline.providers``, the audio codecs ``slotline.audio``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("slotline")
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
