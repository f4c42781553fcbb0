"""Lucene's lossy one-byte document-length encoding (``SmallFloat.intToByte4`` / ``byte4ToInt``).

Lucene stores each document's field length in one byte (exact below 24, then 4 significant bits) and BM25 uses the
decoded length. Reproducing it is what makes our scores equal Anserini/Pyserini's, not just close.
"""

from __future__ import annotations

import numpy as np


def _long_to_int4(i: int) -> int:
    num_bits = i.bit_length()
    if num_bits < 4:
        return i
    shift = num_bits - 4
    encoded = (i >> shift) & 0x07  # 3 explicit mantissa bits; the leading 1 is implicit
    return encoded | ((shift + 1) << 3)


def _int4_to_long(i: int) -> int:
    bits = i & 0x07
    shift = (i >> 3) - 1
    return bits if shift == -1 else (bits | 0x08) << shift


_MAX_INT4 = _long_to_int4(2**31 - 1)
_NUM_FREE_VALUES = 255 - _MAX_INT4  # 24: lengths below this are stored exactly

#: decoded length for each of the 256 byte values
BYTE4_TO_LENGTH = np.array(
    [b if b < _NUM_FREE_VALUES else _NUM_FREE_VALUES + _int4_to_long(b - _NUM_FREE_VALUES) for b in range(256)],
    dtype=np.int64,
)


def lengths_to_bytes(lengths: np.ndarray) -> np.ndarray:
    """Encode document lengths (non-negative ints) the way Lucene's norms do."""
    lengths = np.asarray(lengths, dtype=np.int64)
    out = lengths.copy()
    big = lengths >= _NUM_FREE_VALUES
    if big.any():
        v = lengths[big] - _NUM_FREE_VALUES
        num_bits = np.floor(np.log2(np.maximum(v, 1))).astype(np.int64) + 1
        num_bits[v == 0] = 0
        shift = np.maximum(num_bits - 4, 0)
        encoded = np.where(num_bits < 4, v, ((v >> shift) & 0x07) | ((shift + 1) << 3))
        out[big] = _NUM_FREE_VALUES + encoded
    return out.astype(np.uint8)


def quantized_lengths(lengths: np.ndarray) -> np.ndarray:
    """Document lengths as Lucene's BM25 sees them after the one-byte round trip."""
    return BYTE4_TO_LENGTH[lengths_to_bytes(lengths)]
