"""ECG file readers (one per format, chosen by a registry) and dataset catalogues."""

from .registry import ReaderSpec, detect_format, get_reader, list_readers, read_ecg, register_reader

__all__ = ["ReaderSpec", "detect_format", "get_reader", "list_readers", "read_ecg", "register_reader"]
