"""numba tokenizer for whitespace-separated integer files (one pass over the bytes, no Python per token)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def parse_int_lines(buf: np.ndarray, sep: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Parses non-negative decimal integers separated by spaces/tabs (and ``sep`` when >= 0), one record per line.

    Returns (tokens int64, line_start int64 [n_lines]: index of each non-empty line's first token, line_no int64
    [n_lines]: its 1-based line number, error): error is -1 on success, else the byte offset of the first character
    that is not a digit, a separator or a line break (the caller falls back to a general parser).
    """
    n = buf.shape[0]
    tokens = np.empty(n // 2 + 1, np.int64)
    line_start = np.empty(n // 2 + 1, np.int64)
    line_no = np.empty(n // 2 + 1, np.int64)
    nt = 0
    nl = 0
    line = 1
    in_tok = False
    line_has_tok = False
    val = 0
    for k in range(n):
        c = buf[k]
        if 48 <= c <= 57:
            if not in_tok:
                in_tok = True
                val = 0
                if not line_has_tok:
                    line_has_tok = True
                    line_start[nl] = nt
                    line_no[nl] = line
                    nl += 1
            val = val * 10 + (c - 48)
            if val > 4611686018427387903:  # would overflow int64 on the next digit
                return tokens[:0], line_start[:0], line_no[:0], k
        elif c == 32 or c == 9 or c == 13 or c == 10 or c == sep:
            if in_tok:
                tokens[nt] = val
                nt += 1
                in_tok = False
            if c == 10:
                line += 1
                line_has_tok = False
        else:
            return tokens[:0], line_start[:0], line_no[:0], k
    if in_tok:
        tokens[nt] = val
        nt += 1
    return tokens[:nt].copy(), line_start[:nl].copy(), line_no[:nl].copy(), -1
