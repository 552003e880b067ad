"""ECG file readers (one per format, chosen by a registry) and dataset catalogues."""

from .registry import (
    ReaderSpec,
    detect_format,
    get_reader,
    is_record_file,
    list_readers,
    read_ecg,
    record_suffixes,
    register_reader,
)

__all__ = ["ReaderSpec", "detect_format", "get_reader", "is_record_file", "list_readers", "read_ecg",
           "record_suffixes", "register_reader"]
