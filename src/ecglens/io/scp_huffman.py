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

Decoding is vectorised, not a loop over codes. Each table is a lookup of ``2**width`` entries (``width`` = the
longest prefix, at most :data:`MAX_PREFIX_BITS`); it is indexed by the ``width`` bits at *every* bit position of
the lead at once, for every table that table 1 can switch to, which gives every decoder state (table, bit
position) the state after its code. The states actually decoded, the chain from bit 0 of table 1, are then found
by pointer doubling (O(states x log) numpy work and a short scalar walk, see :func:`_chain`), and the values of
the chain's codes are read all together. The results and errors are those of reading code after code; a loop
over codes is kept for hostile inputs with too many states (:data:`_MAX_STATES`).

Decoding is bounded: each code consumes at least one bit and decoding stops at the end of the lead's bytes, so a
stream that claims more values than it holds is refused (:class:`~ecglens.exceptions.CorruptRecordError`), never
read past or looped on.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NoReturn

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
#: most decoder states (reachable tables x bit positions) decoded with numpy; more (only hostile files: a lead
#: holds at most 65535 bytes, 524280 bits) are decoded by a loop over codes
_MAX_STATES = 1 << 20
#: most pointer-doubling rounds before the scalar walk (:func:`_chain`; each keeps an int64 array per state)
_MAX_LEVELS = 6
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


def _lookup(table: tuple[HuffmanCode, ...], width: int, where: str) -> np.ndarray:
    """Code index for every ``width``-bit window: shape ``(2**width,)``, int32, -1 where no code starts."""
    lut = np.full(1 << width, -1, dtype=np.int32)
    for i, code in enumerate(table):
        lo = code.code << (width - code.prefix_bits)
        hi = (code.code + 1) << (width - code.prefix_bits)
        if (lut[lo:hi] != -1).any():
            raise CorruptRecordError(
                f"{where}: SCP-ECG Huffman table is not prefix-free (code {i + 1} is ambiguous)."
            )
        lut[lo:hi] = i
    return lut


def _bytes40(data: bytes) -> np.ndarray:
    """Bytes ``i .. i+4`` of ``data`` as one big-endian integer, for every ``i`` (zeros past the end).

    Shape ``(len(data) + 8,)``, int64: the 40 bits from bit ``8 * i`` on, first bit most significant.
    """
    n = len(data)
    padded = np.zeros(n + 12, dtype=np.int64)
    padded[:n] = np.frombuffer(data, dtype=np.uint8)
    return sum(padded[k : k + n + 8] << (8 * (4 - k)) for k in range(5))  # type: ignore[return-value]


def _windows(forty: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The 32 bits from each bit position in ``at`` (below ``8 * len(forty)``): same shape, int64, MSB first."""
    return (forty[at >> 3] >> (8 - (at & 7))) & 0xFFFFFFFF


def _tops(forty: np.ndarray, nbits: int, width: int) -> np.ndarray:
    """The ``width`` bits (``width`` <= 33) from every bit position below ``nbits``: shape ``(nbits,)``, int64."""
    out = np.empty((nbits // 8, 8), dtype=np.int64)  # row i: bit positions 8i .. 8i+7
    for r in range(8):
        np.right_shift(forty[: nbits // 8], 40 - width - r, out=out[:, r])
    out &= (1 << width) - 1
    return out.ravel()


def max_values(n_bytes: int, tables: list[tuple[HuffmanCode, ...]] | None) -> int:
    """The most values ``n_bytes`` of encoded data can hold (one bit per code, or two bytes per int16)."""
    return n_bytes // 2 if tables is None else 8 * n_bytes // min(c.total_bits for t in tables for c in t)


def decode_values(
    data: bytes, n_values: int, tables: list[tuple[HuffmanCode, ...]] | None, where: str
) -> np.ndarray:
    """Decode ``n_values`` integers from one lead's encoded bytes.

    Codes are not read one after another. The code starting at every bit position, in every table that table 1
    can switch to, is looked up at once, which gives each decoder state (table, bit position) the state after
    it (:func:`_states`); the chain of states from bit 0 of table 1 is then followed with pointer doubling
    (:func:`_chain`), and the values are read at its states all together. Decoding with more than
    :data:`_MAX_STATES` states (only hostile files) is a loop over codes (:func:`_decode_loop`). Both give the
    values and errors of reading code after code.

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
        Too few bytes (for ``n_values`` at all, or the stream ends after fewer values), a table that is not
        prefix-free, a bit pattern that is no code (its bit position named), or a switch to a table that does
        not exist.
    """
    if n_values > max_values(len(data), tables):
        raise CorruptRecordError(
            f"{where}: {len(data)} bytes cannot hold {n_values} values; the file is truncated or damaged."
        )
    if tables is None:
        return np.frombuffer(data, dtype="<i2", count=n_values).astype(np.int64)
    plan = _plan(tables, where)
    if n_values <= 0:
        return np.empty(n_values, dtype=np.int64)
    forty, nbits = _bytes40(data), 8 * len(data)
    if len(plan.order) * nbits > _MAX_STATES:
        return _decode_loop(forty, nbits, n_values, tables, plan, where)
    top = _tops(forty, nbits, plan.width)
    nxt, emits = _states(top, nbits, plan)
    path = _chain(nxt, emits, n_values)
    states = path[:n_values] if emits is None else path[emits[path]][:n_values]
    if len(states) < n_values or nxt[states[-1]] == states[-1]:  # a final state comes first
        _refuse(path, nxt, emits, top, nbits, n_values, plan, where)
    codes, g = plan.codes, _rows_at(states, top, nbits, plan)
    pos = states % nbits if len(plan.order) > 1 else states
    if pos[-1] + codes.step[g[-1]] > nbits:  # the last code runs past the data
        _truncated(where, n_values, n_values)
    out = codes.base[g]
    extra = codes.extra[g]
    has = np.flatnonzero(extra)
    if has.size:  # trailing value bits: two's complement, most significant bit first
        e = extra[has]
        raw = _windows(forty, pos[has] + codes.prefix[g[has]]) >> (32 - e)
        out[has] = raw - ((raw >> (e - 1)) << e)
    return out


def _truncated(where: str, k: int, n_values: int) -> NoReturn:
    raise CorruptRecordError(
        f"{where}: the encoded data end after {k} of {n_values} values; the file is truncated or damaged."
    )


_OK, _NO_CODE, _BAD_SWITCH = 0, 1, 2


@dataclass(frozen=True)
class _Codes:
    """The codes of the reachable tables, one row each, then a "no code" row per table.

    All arrays have shape ``(n_rows,)``: ``step`` (bits consumed: the entire code for a value, the prefix for a
    switch, 0 for the others), ``emits`` (bool: the row gives a value), ``dest`` (index in ``order`` of the
    table decoding goes on with), ``kind`` (``_OK``, ``_NO_CODE`` or ``_BAD_SWITCH``), ``prefix``, ``extra``
    (value bits after the prefix) and ``base`` (base value, or the switch's table number), int64 but ``emits``.
    """

    step: np.ndarray
    emits: np.ndarray
    dest: np.ndarray
    kind: np.ndarray
    prefix: np.ndarray
    extra: np.ndarray
    base: np.ndarray


@dataclass(frozen=True)
class _Plan:
    """What decoding with some tables needs whatever the data (made per call; once for the default table).

    ``width`` is the longest prefix; ``luts`` the code index of every ``width``-bit window per table (all tables,
    shape ``(2**width,)``, int32, -1: no code); ``order`` the indices of the tables reachable from table 1 by
    switches, table 1 first; ``codes`` their rows. Per reachable table, indexed by window (shape
    ``(2**width,)``): ``rows`` the row in ``codes`` (int32; "no code" is the table's own row), ``steps`` the bits
    the code takes (int64), ``dests`` the index in ``order`` of the next table (int64) and ``emits`` whether it
    gives a value (bool, only when ``switches``: a reachable table holds a valid switch; else ``None``).
    """

    width: int
    luts: list[np.ndarray]
    order: list[int]
    codes: _Codes
    rows: list[np.ndarray]
    steps: list[np.ndarray]
    dests: list[np.ndarray]
    emits: list[np.ndarray] | None


_DEFAULT_PLAN: list[_Plan] = []  # the default table's plan, made on first use


def _plan(tables: list[tuple[HuffmanCode, ...]], where: str) -> _Plan:
    """The lookups and code rows for ``tables``; every table is checked to be prefix-free."""
    default = len(tables) == 1 and tables[0] is DEFAULT_TABLE
    if default and _DEFAULT_PLAN:
        return _DEFAULT_PLAN[0]
    width = max(c.prefix_bits for table in tables for c in table)
    luts = [_lookup(table, width, where) for table in tables]
    order = [0]  # tables reachable from table 1 (index 0), by switches
    for t in order:
        for c in tables[t]:
            if not c.is_value and 1 <= c.base_value <= len(tables) and c.base_value - 1 not in order:
                order.append(c.base_value - 1)
    found: list[tuple[int, ...]] = []  # step, emits, dest, kind, prefix, extra, base
    rows, switches = [], False
    for i, t in enumerate(order):
        rows.append(np.where(luts[t] < 0, len(tables[t]), luts[t]) + np.int32(len(found)))
        for c in tables[t]:
            if c.is_value:
                found.append((c.total_bits, 1, i, _OK, c.prefix_bits, c.total_bits - c.prefix_bits, c.base_value))
            elif 1 <= c.base_value <= len(tables):
                found.append((c.prefix_bits, 0, order.index(c.base_value - 1), _OK, c.prefix_bits, 0, c.base_value))
                switches = True
            else:
                found.append((0, 0, i, _BAD_SWITCH, c.prefix_bits, 0, c.base_value))
        found.append((0, 0, i, _NO_CODE, 0, 0, 0))
    step, emits, dest, kind, prefix, extra, base = np.array(found, dtype=np.int64).T
    codes = _Codes(step, emits.astype(bool), dest, kind, prefix, extra, base)
    plan = _Plan(
        width,
        luts,
        order,
        codes,
        rows,
        [codes.step[r] for r in rows],
        [codes.dest[r] for r in rows],
        [codes.emits[r] for r in rows] if switches else None,
    )
    if default:  # shared from now on: read-only
        for array in [*luts, *rows, *plan.steps, *plan.dests, *vars(codes).values()]:
            array.flags.writeable = False
        _DEFAULT_PLAN.append(plan)
    return plan


def _states(top: np.ndarray, nbits: int, plan: _Plan) -> tuple[np.ndarray, np.ndarray | None]:
    """The state after every decoder state, and whether each gives a value.

    State ``i * nbits + p`` is bit position ``p`` of table ``plan.order[i]``; state ``n_states = len(order) *
    nbits`` is the end (the data are used up). A value or switch code leads to the state after it, or to the end
    when that lies at or past bit ``nbits``; the end, a bit pattern that is no code, and a switch to a missing
    table are final: they lead to themselves.

    Returns
    -------
    nxt : np.ndarray, shape (n_states + 1,), int64
        The next state.
    emits : np.ndarray, shape (n_states + 1,), bool, or None
        Whether the state's code gives a value; ``None`` without switches (then all but final states do).
    """
    n_states = len(plan.order) * nbits
    nxt = np.empty(n_states + 1, dtype=np.int64)
    emits = None if plan.emits is None else np.zeros(n_states + 1, dtype=bool)
    pos = np.arange(nbits, dtype=np.int64)
    for i in range(len(plan.order)):
        if emits is not None and plan.emits is not None:
            np.take(plan.emits[i], top, out=emits[i * nbits : (i + 1) * nbits])
        after = np.take(plan.steps[i], top)
        after += pos
        if len(plan.order) == 1:  # the end is state nbits
            np.minimum(after, n_states, out=nxt[:nbits])
            break
        end = after >= nbits
        after += plan.dests[i][top] * nbits
        after[end] = n_states
        nxt[i * nbits : (i + 1) * nbits] = after
    nxt[n_states] = n_states
    return nxt, emits


def _rows_at(states: np.ndarray, top: np.ndarray, nbits: int, plan: _Plan) -> np.ndarray:
    """The row of ``plan.codes`` at each state (not the end state): same shape, int32."""
    if len(plan.order) == 1:
        return plan.rows[0][top[states]]
    table, pos = np.divmod(states, nbits)
    rows = np.empty(len(states), dtype=np.int32)
    for i in np.unique(table).tolist():
        here = table == i
        rows[here] = plan.rows[i][top[pos[here]]]
    return rows


def _refuse(
    path: np.ndarray,
    nxt: np.ndarray,
    emits: np.ndarray | None,
    top: np.ndarray,
    nbits: int,
    n_values: int,
    plan: _Plan,
    where: str,
) -> NoReturn:
    """Raise the error of the first final state of ``path`` (the chain reached it before ``n_values`` values)."""
    end = int(np.argmax(nxt[path] == path))
    state = int(path[end])
    if state == len(nxt) - 1:
        _truncated(where, end if emits is None else int(np.count_nonzero(emits[path[:end]])), n_values)
    g = int(_rows_at(np.array([state]), top, nbits, plan)[0])
    if plan.codes.kind[g] == _NO_CODE:
        raise CorruptRecordError(
            f"{where}: bit {state % nbits} starts no code of the Huffman table; the data are damaged."
        )
    raise CorruptRecordError(f"{where}: switch to Huffman table {plan.codes.base[g]}, which does not exist.")


def _chain(nxt: np.ndarray, emits: np.ndarray | None, n_values: int) -> np.ndarray:
    """The states decoded from state 0, in order, until ``n_values`` values or a final state.

    Pointer doubling: ``k`` rounds of ``jump = jump[jump]`` over all states (numpy work O(n_states) each) give
    ``nxt`` applied ``2**k`` times; a scalar walk on that gives every ``2**k``-th state of the chain; the rounds'
    jumps then fill in the states between them, in ``k`` numpy steps. ``2**k`` is about ``100 * n_values /
    n_states`` (a walk step costs about as much as 100 states of a round), so the walk takes about
    ``n_states / 100`` steps when every state gives a value. Every code moves at least one bit ahead (no state
    but a final one comes back), so the walk ends within ``n_states / 2**k + 1`` steps.

    Parameters
    ----------
    nxt : np.ndarray, shape (n_states + 1,), int64
        The next state of each state (from :func:`_states`; final states lead to themselves).
    emits : np.ndarray, shape (n_states + 1,), bool, or None
        Whether each state gives a value; ``None`` when all states but the final ones do (no switch codes).
    n_values : int
        How many values are wanted (at least 1).

    Returns
    -------
    np.ndarray, shape (m * 2**k,), int64
        The chain from state 0 until it holds ``n_values`` values (often more states) or has reached a final
        state, after which it repeats that state.
    """
    k = min(_MAX_LEVELS, max((100 * n_values // len(nxt)).bit_length() - 1, 0))
    levels = [nxt]  # levels[i]: nxt applied 2**i times
    counts = None if emits is None else emits.astype(np.int64)  # values in the 2**i states from each state
    for _ in range(k):
        if counts is not None:
            counts = counts + np.take(counts, levels[-1])
        levels.append(np.take(levels[-1], levels[-1]))
    jump, block = levels.pop().item, 1 << k
    state, marks = 0, [0]
    found = block if counts is None else counts.item(0)
    while found < n_values:
        after = jump(state)
        if after == state:  # a final state
            break
        state = after
        marks.append(state)
        found += block if counts is None else counts.item(state)
    path = np.empty(len(marks) << k, dtype=np.int64)
    path[::block] = marks
    for i in range(k - 1, -1, -1):  # the state 2**i after each known one
        np.take(levels[i], path[:: 2 << i], out=path[1 << i :: 2 << i])
    return path


def _decode_loop(
    forty: np.ndarray, nbits: int, n_values: int, tables: list[tuple[HuffmanCode, ...]], plan: _Plan, where: str
) -> np.ndarray:
    """Decode code after code (for more decoder states than :data:`_MAX_STATES`); same values and errors."""
    windows, shift = _windows(forty, np.arange(8 * len(forty))).tolist(), 32 - plan.width
    lists: dict[int, list[int]] = {0: plan.luts[0].tolist()}  # lookups as lists, made when first switched to
    out = np.empty(n_values, dtype=np.int64)
    codes, lut, pos, k = tables[0], lists[0], 0, 0
    while k < n_values and pos < nbits:
        i = lut[windows[pos] >> shift]
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
            t = code.base_value - 1
            if t not in lists:
                lists[t] = plan.luts[t].tolist()
            codes, lut = tables[t], lists[t]
            pos += code.prefix_bits
            continue
        extra = code.total_bits - code.prefix_bits
        if extra:
            value = windows[pos + code.prefix_bits] >> (32 - extra)
            out[k] = value - (1 << extra) if value >> (extra - 1) else value
        else:
            out[k] = code.base_value
        pos += code.total_bits
        k += 1
    if k < n_values or pos > nbits:
        _truncated(where, k, n_values)
    return out
