# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, binding=True
"""The book's per-level hot loop, compiled: the same behaviour as ``_levels.py`` (read
that module for the semantics); the property tests run the book on both. What C buys
here: the size check is one pass over the string's characters instead of three string
methods, and dict/list operations are direct C-API calls."""

from bisect import bisect_left, insort

from .prices import canonical_size

COMPILED = True


cdef inline int _plain_size(str size):
    """1: plain ASCII decimal, non-zero; 0: plain zero; -1: anything else (strict path)."""
    cdef Py_UCS4 ch
    cdef int dots = 0
    cdef int digits = 0
    cdef int nonzero = 0
    for ch in size:
        if ch == u'.':
            dots += 1
            if dots > 1:
                return -1
        elif u'0' <= ch <= u'9':
            digits += 1
            if ch != u'0':
                nonzero = 1
        else:
            return -1
    if digits == 0:
        return -1
    return nonzero


def apply_side(book, levels, bint bid):
    cdef dict cache = book._cache
    cdef dict side
    cdef list keys
    cdef int state
    cdef bint zero
    if bid:
        side = book._bids
        keys = book._bid_keys
        floor = book._bid_floor
    else:
        side = book._asks
        keys = book._ask_keys
        floor = book._ask_floor
    cdef Py_ssize_t before
    for level in levels:
        price, size = level
        stored = level if type(level) is tuple else None  # reuse the decoder's tuple as is
        key = cache.get(price)
        if key is None:
            key, kept = book._key(price)
            if kept is not price:
                price = kept
                stored = None
            floor = book._bid_floor if bid else book._ask_floor
        if not bid:
            key = -key
        state = _plain_size(<str>size) if type(size) is str else -1
        if state < 0:
            size, zero = canonical_size(size)
            stored = None
        else:
            zero = state == 0
        if zero:
            if key in side:
                del side[key]
                del keys[bisect_left(keys, key)]
            continue
        if stored is None:
            stored = (price, size)
        # one dict operation for the common case (an existing level); a new key shows
        # as growth, and is undone if it lies beyond the truncation boundary
        before = len(side)
        side[key] = stored
        if len(side) != before:
            if key >= floor:
                insort(keys, key)
            else:
                del side[key]
                book.ignored += 1


def apply_levels(book, bids, asks):
    """``OrderBook.apply`` (bound there as the method: ``binding=True`` makes this a
    function object that binds like a Python one). Returns whether the book is crossed."""
    if bids:
        apply_side(book, bids, True)
    if asks:
        apply_side(book, asks, False)
    cdef list bid_keys = book._bid_keys
    cdef list ask_keys = book._ask_keys
    # (wraparound=False: no negative indices in this module)
    return bool(bid_keys and ask_keys and bid_keys[len(bid_keys) - 1] >= -ask_keys[len(ask_keys) - 1])


def top_side(dict side, list keys, Py_ssize_t n):
    cdef Py_ssize_t i
    cdef Py_ssize_t last = len(keys) - 1
    cdef Py_ssize_t stop = last - n if n < len(keys) else -1
    cdef list out = []
    i = last
    while i > stop:
        out.append(side[keys[i]])
        i -= 1
    return out
