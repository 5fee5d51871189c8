"""LMDB's ``data.mdb`` read page by page in Python: the layout, the tree check, raw records.

LMDB keeps no checksums and trusts its pages: a zeroed or overwritten page makes it fail an
assertion and abort the process (exit status 134), and a file cut short makes its memory map
fault (a bus error, exit status 135). Neither can be caught in Python, so before LMDB reads a
store, :func:`check_tree` walks the pages it could touch with plain ``pread`` calls and
raises :class:`DamagedPagesError` naming what is wrong, and :func:`read_pages` gives every record
of a damaged file for salvage without LMDB at all.

The layout (LMDB 0.9, 64-bit; ``lmdb/mdb.c``), all little-endian:

* a page starts with a 16-byte header: page number (u64), pad (u16), flags (u16: 1 branch,
  2 leaf, 4 overflow, 8 meta), then ``lower``/``upper`` (u16 each: the end of the node-offset
  array and the start of the nodes; an overflow page holds its page count (u32) there);
* pages 0 and 1 are meta pages, written alternately; the one with the higher transaction id
  is current. After its header: magic (u32 0xBEEFC0DE), version (u32), address, map size,
  then the free-list and main databases (48 bytes each: pad (u32, the page size in the
  free database's), flags (u16), depth (u16), branch, leaf and overflow page counts,
  entries, root page (u64 each)), the last page used and the transaction id;
* a branch or leaf page holds ``(lower - 16) / 2`` node offsets (u16, from the page start);
  a node is ``lo, hi, flags, key size`` (u16 each) then the key. In a leaf, ``lo | hi << 16``
  is the value size and the value follows the key, or with flag 1 (big data) an 8-byte page
  number of the overflow pages that hold it; in a branch, ``lo | hi << 16 | flags << 32`` is
  the child page.

A check must see the pages of one snapshot: :func:`check_tree` is given the transaction id
of a read transaction the caller holds open, so no writer reuses those pages meanwhile.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

__all__ = ["DamagedPagesError", "MetaPage", "read_meta", "check_tree", "read_pages"]

PAGE_HEADER = 16
NODE_HEADER = 8
P_BRANCH, P_LEAF, P_OVERFLOW, P_META = 0x01, 0x02, 0x04, 0x08
_KNOWN_FLAGS = 0x7F
F_BIGDATA = 0x01
META_MAGIC = 0xBEEFC0DE
META_PAGES = 2
_INVALID_PAGE = (1 << 64) - 1
_DB = struct.Struct("<IHHQQQQQ")  # pad, flags, depth, branch, leaf, overflow pages, entries, root
_FREE_DB, _MAIN_DB, _LAST_PAGE, _TXNID = PAGE_HEADER + 24, PAGE_HEADER + 72, PAGE_HEADER + 120, PAGE_HEADER + 128


class DamagedPagesError(ValueError):
    """A page of ``data.mdb`` is not what LMDB expects there (the message says which and how)."""


@dataclass(frozen=True)
class Tree:
    """One database of a meta page: its root and what the meta page says it holds."""

    depth: int
    branch_pages: int
    leaf_pages: int
    overflow_pages: int
    entries: int
    root: int  # _INVALID_PAGE when empty


@dataclass(frozen=True)
class MetaPage:
    """The current meta page of a ``data.mdb``."""

    page_size: int
    last_page: int
    txnid: int
    free: Tree
    main: Tree


def _tree(raw: bytes, offset: int) -> Tree:
    _, _, depth, branch, leaf, overflow, entries, root = _DB.unpack_from(raw, offset)
    return Tree(depth, branch, leaf, overflow, entries, root)


def _meta(raw: bytes) -> MetaPage | None:
    if len(raw) < _TXNID + 8:
        return None
    flags = struct.unpack_from("<H", raw, 10)[0]
    magic = struct.unpack_from("<I", raw, PAGE_HEADER)[0]
    if not flags & P_META or magic != META_MAGIC:
        return None
    psize = _DB.unpack_from(raw, _FREE_DB)[0]
    last, txnid = struct.unpack_from("<QQ", raw, _LAST_PAGE)
    return MetaPage(psize, last, txnid, _tree(raw, _FREE_DB), _tree(raw, _MAIN_DB))


def _valid_page_size(size: int) -> bool:
    return 512 <= size <= 65536 and size & (size - 1) == 0


def read_meta(fd: int) -> tuple[MetaPage | None, MetaPage | None]:
    """Both meta pages of the open ``data.mdb`` ``fd`` (None where one does not parse)."""
    first = _meta(os.pread(fd, 4096, 0))
    size = first.page_size if first is not None and _valid_page_size(first.page_size) else 4096
    return first, _meta(os.pread(fd, size, size))


def check_tree(data_file: str | Path, txnid: int | None = None) -> MetaPage:
    """Check every page the snapshot ``txnid`` (default: the newest) can reach: the file is
    long enough for its last page, and each page of both trees (main and free list) has its
    own number, the type its place in the tree asks for, node offsets and sizes inside the
    page, children and overflow pages inside the file, and the counts the meta page gives.

    Raises DamagedPagesError (what is wrong) where LMDB could abort or fault on the file; returns
    the meta page checked. Never calls LMDB.
    """
    with open(data_file, "rb") as handle:
        fd = handle.fileno()
        size = os.fstat(fd).st_size
        metas = [m for m in read_meta(fd) if m is not None]
        if not metas:
            raise DamagedPagesError("neither meta page is valid")
        meta = max(metas, key=lambda m: m.txnid)
        if txnid is not None:
            meta = next((m for m in metas if m.txnid == txnid), meta)
        if not _valid_page_size(meta.page_size):
            raise DamagedPagesError(f"the meta page gives a page size of {meta.page_size}")
        needed = (meta.last_page + 1) * meta.page_size
        if size < needed:
            raise DamagedPagesError(
                f"data.mdb is cut short: {size} bytes, but its meta page uses pages up to "
                f"{meta.last_page} ({needed} bytes)"
            )
        walker = _Walker(fd, meta)
        walker.walk("main", meta.main, free_list=False)
        walker.walk("free-list", meta.free, free_list=True)
    return meta


class _Walker:
    def __init__(self, fd: int, meta: MetaPage) -> None:
        self.fd, self.meta, self.psize = fd, meta, meta.page_size
        self.seen: set[int] = set()

    def _page(self, number: int, what: str) -> bytes:
        if not META_PAGES <= number <= self.meta.last_page:
            raise DamagedPagesError(f"{what} points at page {number}, outside the file's pages 2..{self.meta.last_page}")
        if number in self.seen:
            raise DamagedPagesError(f"page {number} is reached twice ({what})")
        self.seen.add(number)
        raw = os.pread(self.fd, self.psize, number * self.psize)
        own = struct.unpack_from("<Q", raw)[0]
        if own != number:
            raise DamagedPagesError(f"page {number} (reached from {what}) carries the number {own}: it was overwritten")
        return raw

    def walk(self, name: str, tree: Tree, free_list: bool) -> None:
        if tree.root == _INVALID_PAGE:
            if tree.entries:
                raise DamagedPagesError(f"the {name} tree has no root but {tree.entries} entries")
            return
        level, counts = [(tree.root, f"the {name} tree's root")], [0, 0, 0, 0]  # branch, leaf, overflow, entries
        for depth in range(1, tree.depth + 1):
            is_leaf = depth == tree.depth
            following: list[tuple[int, str]] = []
            for number, what in level:
                raw = self._page(number, what)
                for flags, key_size, lo_hi, body in self._nodes(raw, number, P_LEAF if is_leaf else P_BRANCH):
                    if is_leaf:
                        counts[3] += 1
                        value = self._value(raw, number, flags, key_size, lo_hi, body, counts)
                        if free_list:
                            self._check_free_list(value, number)
                    else:
                        following.append((lo_hi | flags << 32, f"branch page {number}"))
                counts[1 if is_leaf else 0] += 1
            level = following
        if level:
            raise DamagedPagesError(f"the {name} tree is deeper than its meta page says ({tree.depth})")
        expected = [tree.branch_pages, tree.leaf_pages, tree.overflow_pages, tree.entries]
        if counts != expected:
            raise DamagedPagesError(
                f"the {name} tree holds {counts[1]} leaf, {counts[0]} branch, {counts[2]} overflow pages and "
                f"{counts[3]} entries; its meta page says {expected[1]}, {expected[0]}, {expected[2]} and {expected[3]}"
            )

    def _nodes(self, raw: bytes, number: int, kind: int):
        _, _, flags, lower, upper = struct.unpack_from("<QHHHH", raw)
        if flags & ~_KNOWN_FLAGS or flags & (P_BRANCH | P_LEAF | P_OVERFLOW | P_META) != kind:
            want = "leaf" if kind == P_LEAF else "branch"
            raise DamagedPagesError(f"page {number} should be a {want} page, but its flags are {flags:#x}")
        if not (PAGE_HEADER <= lower <= upper <= self.psize) or lower % 2 or lower == PAGE_HEADER:
            raise DamagedPagesError(f"page {number} has a broken node table (lower {lower}, upper {upper})")
        count = (lower - PAGE_HEADER) // 2
        for offset in struct.unpack_from(f"<{count}H", raw, PAGE_HEADER):
            if not upper <= offset <= self.psize - NODE_HEADER:
                raise DamagedPagesError(f"page {number} has a node at offset {offset}, outside {upper}..{self.psize}")
            lo, hi, node_flags, key_size = struct.unpack_from("<HHHH", raw, offset)
            body = offset + NODE_HEADER
            if body + key_size > self.psize:
                raise DamagedPagesError(f"page {number} has a key running past the page end")
            yield node_flags, key_size, lo | hi << 16, body

    def _value(self, raw, number, flags, key_size, size, body, counts) -> bytes:
        start = body + key_size
        if flags & ~F_BIGDATA:
            raise DamagedPagesError(f"page {number} has a node with flags {flags:#x} (no database here has duplicates)")
        if not flags & F_BIGDATA:
            if start + size > self.psize:
                raise DamagedPagesError(f"page {number} has a value running past the page end")
            return raw[start : start + size]
        if start + 8 > self.psize:
            raise DamagedPagesError(f"page {number} has a big value whose page number runs past the page end")
        first = struct.unpack_from("<Q", raw, start)[0]
        head = self._page(first, f"a big value on page {number}")
        kind, pages = struct.unpack_from("<HI", head, 10)
        if not kind & P_OVERFLOW or pages < 1 or first + pages - 1 > self.meta.last_page:
            raise DamagedPagesError(f"overflow page {first} (from page {number}) is not a valid overflow run")
        if size > pages * self.psize - PAGE_HEADER:
            raise DamagedPagesError(f"overflow page {first} is too short for its {size}-byte value")
        self.seen.update(range(first + 1, first + pages))
        counts[2] += pages
        rest = size - (self.psize - PAGE_HEADER)
        tail = os.pread(self.fd, rest, (first + 1) * self.psize) if rest > 0 else b""
        return (head[PAGE_HEADER:] + tail)[:size]

    def _check_free_list(self, value: bytes, number: int) -> None:
        # a free-list entry is an id list: its length (u64), then that many page numbers
        if len(value) < 8 or len(value) % 8:
            raise DamagedPagesError(f"a free-list entry on page {number} is {len(value)} bytes, not a page list")
        count = struct.unpack_from("<Q", value)[0]
        if count != len(value) // 8 - 1:
            raise DamagedPagesError(f"a free-list entry on page {number} says {count} pages but holds {len(value) // 8 - 1}")
        pages = struct.unpack_from(f"<{count}Q", value, 8)
        if pages and not (META_PAGES <= min(pages) and max(pages) <= self.meta.last_page):
            raise DamagedPagesError(f"a free-list entry on page {number} names pages outside the file")


# ---------------------------------------------------------------- every record, without LMDB
def page_size(raw) -> int:
    """LMDB's page size from a meta page, else 4096."""
    for offset in (0, 4096):
        meta = _meta(raw[offset : offset + _TXNID + 8])
        if meta is not None and _valid_page_size(meta.page_size):
            return meta.page_size
    return 4096


def read_pages(data_file: str | Path) -> Iterator[tuple[bytes, bytes]]:
    """Every (key, value) found in the leaf pages of an LMDB ``data.mdb``, current or stale,
    skipping pages and nodes that do not parse. Never calls LMDB."""
    with open(data_file, "rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as raw:  # no copy of a large store
            yield from _leaf_nodes(raw)


def _leaf_nodes(raw) -> Iterator[tuple[bytes, bytes]]:
    psize = page_size(raw)
    pages = len(raw) // psize
    for number in range(META_PAGES, pages):
        base = number * psize
        pgno, _, flags, lower, upper = struct.unpack_from("<QHHHH", raw, base)
        if pgno != number or flags & ~_KNOWN_FLAGS or not flags & P_LEAF or flags & (P_OVERFLOW | P_META):
            continue
        if not PAGE_HEADER <= lower <= upper <= psize:
            continue
        for slot in range((lower - PAGE_HEADER) // 2):
            offset = struct.unpack_from("<H", raw, base + PAGE_HEADER + 2 * slot)[0]
            if not upper <= offset <= psize - NODE_HEADER:
                continue
            lo, hi, node_flags, ksize = struct.unpack_from("<HHHH", raw, base + offset)
            size = lo | (hi << 16)
            start = base + offset + NODE_HEADER
            key = raw[start : start + ksize]
            if node_flags & F_BIGDATA:
                if start + ksize + 8 > base + psize:
                    continue
                first = struct.unpack_from("<Q", raw, start + ksize)[0]
                begin = first * psize + PAGE_HEADER
                if first >= pages or begin + size > len(raw):
                    continue
                value = raw[begin : begin + size]
            else:
                if start + ksize + size > base + psize:
                    continue
                value = raw[start + ksize : start + ksize + size]
            yield key, value
