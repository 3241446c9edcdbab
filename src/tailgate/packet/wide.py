"""Slot rows without reference counting, unaligned multi-byte loads and stores on them, and a
cache prefetch, for numba kernels.

Manual
------
``slot_row(data, s)`` is ``data[s]`` (one slot's bytes, a 1-D C-contiguous view) for a kernel's
per-packet loop. numba's own ``data[s]`` makes a view that shares the pool's reference count:
an atomic increment and decrement per packet, which its pruning pass drops only in simple
loops; in a header kernel with branches they stayed, and cost as much as the work. The row it
returns borrows: it is valid while ``data`` is, which the caller holds for the whole call.

Header fields sit at any byte offset (an IPv4 header after a 14-byte Ethernet header is only
2-byte aligned), so numba kernels read them a byte at a time: ``(row[o] << 8) | row[o + 1]``.
That is two loads, two widenings, a shift and an or per 16-bit field, and on a small VM it was
most of a header kernel's time. These helpers compile to ONE unaligned load or store (x86 and
ARMv8 do those at full speed) plus a byte swap for the big-endian forms:

- ``ld_be16(row, o)``, ``ld_be32(row, o)`` -> int64: the big-endian field at ``row[o:]``;
- ``ld_le16(row, o)``, ``ld_le32(row, o)`` -> int64: the little-endian field (a pcap file's
  record headers, written in the capturing machine's order);
- ``st_be16(row, o, v)``, ``st_be32(row, o, v)``: store the low 16/32 bits of ``v`` big-endian.

``row`` is a C-contiguous 1-D ``uint8`` array (a slot row ``data[s]``) and ``o`` an offset >= 0.
Like numba's own indexing they do no bounds check: the caller guarantees ``o + width <= len(row)``
(the parser's offsets promise that much for the header they point at).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import populate_array

__all__ = ["ld_be16", "ld_be32", "ld_le16", "ld_le32", "prefetch", "prefetch_byte", "slot_row", "st_be16", "st_be32"]


@intrinsic
def slot_row(typingctx, data, s):
    if not (isinstance(data, types.Array) and data.ndim == 2 and data.layout == "C" and isinstance(s, types.Integer)):
        return None
    row_type = data.copy(ndim=1, layout="C")

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        row_len = cgutils.unpack_tuple(builder, ary.shape, 2)[1]
        item_stride = cgutils.unpack_tuple(builder, ary.strides, 2)[1]
        i = _as_i64(builder, args[1], sig.args[1])
        row = context.make_array(row_type)(context, builder)
        # meminfo None: a borrowed view that numba's reference counting skips
        populate_array(
            row, data=builder.gep(ary.data, [builder.mul(i, row_len)]), shape=[row_len], strides=[item_stride],
            itemsize=ary.itemsize, meminfo=None,
        )
        return row._getvalue()

    return row_type(data, s), codegen


def _byte_ptr(context, builder, sig, args):
    ary = context.make_array(sig.args[0])(context, builder, args[0])
    return builder.gep(ary.data, [_as_i64(builder, args[1], sig.args[1])])


@intrinsic
def prefetch(typingctx, data, s, o):
    """Ask the cache for ``data[s, o]`` (a 2-D C array) ahead of use: no load, no fault, no
    result. A parser that prefetches the frame 8 packets ahead hides most of the miss of a
    packet's first touch."""
    if not (isinstance(data, types.Array) and data.ndim == 2 and data.layout == "C"):
        return None
    if not (isinstance(s, types.Integer) and isinstance(o, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        row_len = cgutils.unpack_tuple(builder, ary.shape, 2)[1]
        i, j = (_as_i64(builder, v, t) for v, t in zip(args[1:], sig.args[1:]))
        p = builder.gep(ary.data, [builder.add(builder.mul(i, row_len), j)])
        _emit_prefetch(builder, p, write=True)
        return context.get_dummy_value()

    return types.none(data, s, o), codegen


@intrinsic
def prefetch_byte(typingctx, buf, p):
    """Ask the cache for ``buf[p]`` (a 1-D C array) ahead of use, for reading: no load, no
    fault, no result (a capture file's records, walked a few hundred bytes ahead)."""
    if not (isinstance(buf, types.Array) and buf.ndim == 1 and buf.layout == "C" and isinstance(p, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        _emit_prefetch(builder, _byte_ptr(context, builder, sig, args), write=False)
        return context.get_dummy_value()

    return types.none(buf, p), codegen


def _emit_prefetch(builder, ptr, write: bool) -> None:
    """``llvm.prefetch(ptr, rw, locality 3 = keep in all levels, data cache)``."""
    i32 = ir.IntType(32)
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32]), "llvm.prefetch.p0"
    )
    builder.call(fn, [ptr, i32(1 if write else 0), i32(3), i32(1)])


def _as_i64(builder, v, ty):
    if v.type.width < 64:
        return (builder.sext if ty.signed else builder.zext)(v, ir.IntType(64))
    return v


def _check(row, o):
    return (
        isinstance(row, types.Array) and row.ndim == 1 and row.dtype == types.uint8 and row.layout == "C"
        and isinstance(o, types.Integer)
    )


def _loader(bits: int, swap: bool):
    def impl(typingctx, row, o):
        if not _check(row, o):
            return None

        def codegen(context, builder, sig, args):
            ity = ir.IntType(bits)
            p = builder.bitcast(_byte_ptr(context, builder, sig, args), ity.as_pointer())
            v = builder.load(p, align=1)
            if swap:
                v = builder.call(builder.module.declare_intrinsic("llvm.bswap", [ity]), [v])
            return builder.zext(v, ir.IntType(64))

        return types.int64(row, o), codegen

    impl.__name__ = f"ld_{'be' if swap else 'le'}{bits}"
    return intrinsic(impl)


def _storer(bits: int, swap: bool):
    def impl(typingctx, row, o, v):
        if not _check(row, o) or not isinstance(v, types.Integer):
            return None

        def codegen(context, builder, sig, args):
            ity = ir.IntType(bits)
            val = args[2]
            val = builder.trunc(val, ity) if val.type.width > bits else builder.zext(val, ity)
            if swap:
                val = builder.call(builder.module.declare_intrinsic("llvm.bswap", [ity]), [val])
            p = builder.bitcast(_byte_ptr(context, builder, sig, args), ity.as_pointer())
            builder.store(val, p, align=1)
            return context.get_dummy_value()

        return types.none(row, o, v), codegen

    impl.__name__ = f"st_{'be' if swap else 'le'}{bits}"
    return intrinsic(impl)


ld_be16 = _loader(16, True)
ld_be32 = _loader(32, True)
ld_le16 = _loader(16, False)
ld_le32 = _loader(32, False)
st_be16 = _storer(16, True)
st_be32 = _storer(32, True)
