"""Huffman decoding of SCP-ECG sample data (EN 1064 / ISO 11073-91064, sections 2, 5 and 6), in numpy.

Written from the standard's description of section 2, not from another implementation:

* Section 2 starts with the number of tables; the value 19999 means "the default table" (:data:`DEFAULT_TABLE`).
  Otherwise each table is a count of code structures followed by that many 9-byte structures: number of bits in
  the prefix, number of bits in the entire code, table mode switch (1: the code stands for a value; 0: the code
  switches decoding to the table whose number is the base value), base value (int16), and base code (uint32,
  the prefix's bits in *reversed* order of transmission).
* A code whose entire length exceeds its prefix is followed by ``total - prefix`` bits that hold the value
  itself, a two's-complement integer sent most significant bit first (the default table's 8- and 16-bit
  escapes). Otherwise the value is the base value.
* Each lead's stream starts decoding with table 1; bits are read most significant bit of each byte first.
* Without section 2 the sample data are little-endian int16, two bytes per value.

Decoding is bounded: each code consumes at least one bit and the loop stops at the end of the lead's bytes, so a
stream that claims more values than it holds is refused (:class:`~ecglens.exceptions.CorruptRecordError`), never
read past or looped on. Codes are looked up in one table of ``2**width`` entries (``width`` = longest prefix,
at most :data:`MAX_PREFIX_BITS`) indexed by a 32-bit window of the bit stream at every bit position.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from ..exceptions import CorruptRecordError

__all__ = [
    "DEFAULT_TABLE",
    "DEFAULT_TABLE_MARKER",
    "MAX_PREFIX_BITS",
    "HuffmanCode",
    "decode_values",
    "max_values",
    "parse_tables",
]

#: number of tables in section 2 that means "use the default table"
DEFAULT_TABLE_MARKER = 19999
#: longest prefix accepted (a lookup table of 2**20 entries)
MAX_PREFIX_BITS = 20
_MAX_EXTRA_BITS = 32
_CODE_STRUCT = struct.Struct("<BBBhI")


@dataclass(frozen=True)
class HuffmanCode:
    """One code structure of a Huffman table.

    Attributes
    ----------
    prefix_bits, total_bits : int
        Length of the prefix and of the entire code (prefix + value bits).
    is_value : bool
        True when the code stands for a value; False when it switches to table number ``base_value``.
    base_value : int
        The value (or the table number to switch to).
    code : int
        The prefix as transmitted (first bit most significant).
    """

    prefix_bits: int
    total_bits: int
    is_value: bool
    base_value: int
    code: int


def _default_table() -> tuple[HuffmanCode, ...]:
    """The standard's default table: ``0`` -> 0; k ones, ``0``, sign -> +-k (k = 1..8); 8- and 16-bit escapes."""
    codes = [HuffmanCode(1, 1, True, 0, 0b0)]
    for k in range(1, 9):
        prefix = ((1 << k) - 1) << 2
        codes += [HuffmanCode(k + 2, k + 2, True, k, prefix), HuffmanCode(k + 2, k + 2, True, -k, prefix | 1)]
    codes += [HuffmanCode(10, 18, True, 0, 0b1111111110), HuffmanCode(10, 26, True, 0, 0b1111111111)]
    return tuple(codes)


#: the default Huffman table of EN 1064 (codes 0, 100, 101, 1100, 1101, ..., 1111111110 + 8 bits, 1111111111 + 16)
DEFAULT_TABLE: tuple[HuffmanCode, ...] = _default_table()


def _reverse_bits(value: int, n: int) -> int:
    """The ``n`` low bits of ``value`` in reversed order."""
    return int(format(value, f"0{n}b")[::-1], 2) if n else 0


def parse_tables(body: bytes, where: str) -> list[tuple[HuffmanCode, ...]]:
    """Parse the body of section 2 (after its 16-byte header).

    Parameters
    ----------
    body : bytes
        Section 2 without its section header.
    where : str
        Prefix of error messages (the file path).

    Returns
    -------
    list of tuple of HuffmanCode
        The tables, table 1 first (``[DEFAULT_TABLE]`` for the default-table marker).

    Raises
    ------
    CorruptRecordError
        Truncated tables, impossible code lengths, or a base code longer than its prefix.
    """
    if len(body) < 2:
        raise CorruptRecordError(
            f"{where}: SCP-ECG section 2 (Huffman tables) is too short to hold its table count."
        )
    (n_tables,) = struct.unpack_from("<H", body, 0)
    if n_tables == DEFAULT_TABLE_MARKER:
        return [DEFAULT_TABLE]
    if n_tables == 0:
        raise CorruptRecordError(
            f"{where}: SCP-ECG section 2 declares 0 Huffman tables (19999 means the default)."
        )
    tables, pos = [], 2
    for t in range(n_tables):
        if pos + 2 > len(body):
            raise CorruptRecordError(
                f"{where}: SCP-ECG section 2 ends inside Huffman table {t + 1} of {n_tables}."
            )
        (n_codes,) = struct.unpack_from("<H", body, pos)
        pos += 2
        if n_codes == 0 or pos + n_codes * _CODE_STRUCT.size > len(body):
            raise CorruptRecordError(
                f"{where}: SCP-ECG Huffman table {t + 1} claims {n_codes} codes, more than section 2 holds."
            )
        tables.append(tuple(_parse_code(body, pos + i * _CODE_STRUCT.size, where) for i in range(n_codes)))
        pos += n_codes * _CODE_STRUCT.size
    return tables


def _parse_code(body: bytes, pos: int, where: str) -> HuffmanCode:
    """One 9-byte code structure."""
    prefix, total, mode, base, stored = _CODE_STRUCT.unpack_from(body, pos)
    extra = total - prefix
    if not 1 <= prefix <= MAX_PREFIX_BITS or not 0 <= extra <= _MAX_EXTRA_BITS or stored >> prefix:
        raise CorruptRecordError(
            f"{where}: SCP-ECG Huffman code with a {prefix}-bit prefix, {total} bits in all and base code "
            f"{stored} is impossible (prefixes of 1-{MAX_PREFIX_BITS} bits, at most {_MAX_EXTRA_BITS} value bits)."
        )
    return HuffmanCode(prefix, total, mode == 1, base, _reverse_bits(stored, prefix))


def _lookup(table: tuple[HuffmanCode, ...], width: int, where: str) -> list[int]:
    """Code index for every ``width``-bit window (-1: no code starts with these bits)."""
    lut = np.full(1 << width, -1, dtype=np.int32)
    for i, code in enumerate(table):
        lo = code.code << (width - code.prefix_bits)
        hi = (code.code + 1) << (width - code.prefix_bits)
        if (lut[lo:hi] != -1).any():
            raise CorruptRecordError(
                f"{where}: SCP-ECG Huffman table is not prefix-free (code {i + 1} is ambiguous)."
            )
        lut[lo:hi] = i
    return lut.tolist()


def _windows(data: bytes) -> list[int]:
    """The 32 bits starting at every bit position of ``data`` (zeros past the end), plus 64 padding windows."""
    n = len(data)
    padded = np.zeros(n + 5, dtype=np.uint64)
    padded[:n] = np.frombuffer(data, dtype=np.uint8)
    forty = sum(padded[k : k + n] << np.uint64(8 * (4 - k)) for k in range(5))  # bytes i..i+4, big endian
    win = np.zeros(8 * n + 64, dtype=np.uint64)
    for r in range(8):
        win[r : 8 * n : 8] = (forty >> np.uint64(8 - r)) & np.uint64(0xFFFFFFFF)
    return win.tolist()


def max_values(n_bytes: int, tables: list[tuple[HuffmanCode, ...]] | None) -> int:
    """The most values ``n_bytes`` of encoded data can hold (one bit per code, or two bytes per int16)."""
    return n_bytes // 2 if tables is None else 8 * n_bytes // min(c.total_bits for t in tables for c in t)


def decode_values(
    data: bytes, n_values: int, tables: list[tuple[HuffmanCode, ...]] | None, where: str
) -> np.ndarray:
    """Decode ``n_values`` integers from one lead's encoded bytes.

    Parameters
    ----------
    data : bytes
        The lead's bytes from section 5 or 6.
    n_values : int
        How many values the lead holds.
    tables : list of tuple of HuffmanCode, or None
        From :func:`parse_tables`; ``None`` when the file has no section 2 (int16 samples).
    where : str
        Prefix of error messages (file path, section and lead).

    Returns
    -------
    np.ndarray, shape (n_values,), int64
        The stored values (still differences when the section says so).

    Raises
    ------
    CorruptRecordError
        Too few bytes, a bit pattern that is no code, or a switch to a table that does not exist.
    """
    if n_values > max_values(len(data), tables):
        raise CorruptRecordError(
            f"{where}: {len(data)} bytes cannot hold {n_values} values; the file is truncated or damaged."
        )
    if tables is None:
        return np.frombuffer(data, dtype="<i2", count=n_values).astype(np.int64)
    width = max(c.prefix_bits for table in tables for c in table)
    luts = [_lookup(table, width, where) for table in tables]
    win, nbits, shift = _windows(data), 8 * len(data), 32 - width
    out = np.empty(n_values, dtype=np.int64)
    codes, lut, pos, k = tables[0], luts[0], 0, 0
    while k < n_values:
        if pos >= nbits:
            break
        i = lut[win[pos] >> shift]
        if i < 0:
            raise CorruptRecordError(
                f"{where}: bit {pos} starts no code of the Huffman table; the data are damaged."
            )
        code = codes[i]
        if not code.is_value:
            if not 1 <= code.base_value <= len(tables):
                raise CorruptRecordError(
                    f"{where}: switch to Huffman table {code.base_value}, which does not exist."
                )
            codes, lut = tables[code.base_value - 1], luts[code.base_value - 1]
            pos += code.prefix_bits
            continue
        extra = code.total_bits - code.prefix_bits
        if extra:
            value = win[pos + code.prefix_bits] >> (32 - extra)
            out[k] = value - (1 << extra) if value >> (extra - 1) else value
        else:
            out[k] = code.base_value
        pos += code.total_bits
        k += 1
    if k < n_values or pos > nbits:
        raise CorruptRecordError(
            f"{where}: the encoded data end after {k} of {n_values} values; the file is truncated or damaged."
        )
    return out
