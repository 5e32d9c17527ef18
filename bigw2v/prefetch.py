"""Cache prefetch hints for Numba code (Numba has none of its own).

A prefetch asks the CPU to start loading a cache line that the code will
read soon, so the wait for memory overlaps other work. It is only a hint:
it never faults (an address past an array's end is harmless) and never
changes a result. Both functions emit LLVM's ``llvm.prefetch`` (read, keep
in all cache levels, data).
"""

from llvmlite import ir
from numba import types
from numba.extending import intrinsic


def _emit_prefetch(builder, address):
    byte_ptr = ir.IntType(8).as_pointer()
    i32 = ir.IntType(32)
    fn = builder.module.declare_intrinsic(
        "llvm.prefetch", fnty=ir.FunctionType(ir.VoidType(), [byte_ptr, i32, i32, i32]))
    builder.call(fn, [builder.bitcast(address, byte_ptr), ir.Constant(i32, 0),
                      ir.Constant(i32, 3), ir.Constant(i32, 1)])


@intrinsic
def prefetch(typingctx, array, index):
    """Start loading the cache line of ``array[index]`` (C-contiguous 1-D)."""
    if not (isinstance(array, types.Array) and array.ndim == 1 and array.layout == "C"):
        return None

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0])
        i = context.cast(builder, args[1], signature.args[1], types.intp)
        _emit_prefetch(builder, builder.gep(data.data, [i]))
        return context.get_dummy_value()

    return types.void(array, index), codegen


@intrinsic
def prefetch_2d(typingctx, matrix, row, col):
    """Start loading the cache line of ``matrix[row, col]`` (C-contiguous 2-D)."""
    if not (isinstance(matrix, types.Array) and matrix.ndim == 2 and matrix.layout == "C"):
        return None

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0])
        r = context.cast(builder, args[1], signature.args[1], types.intp)
        c = context.cast(builder, args[2], signature.args[2], types.intp)
        n_cols = builder.extract_value(data.shape, 1)
        _emit_prefetch(builder, builder.gep(data.data, [builder.add(builder.mul(r, n_cols), c)]))
        return context.get_dummy_value()

    return types.void(matrix, row, col), codegen
