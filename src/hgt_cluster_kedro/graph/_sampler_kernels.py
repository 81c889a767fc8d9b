"""Numba kernels of :class:`~hgt_cluster_kedro.graph.sampler.NeighborSampler`.

Imported lazily by the sampler (``backend="numba"`` / ``"auto"``), so that
importing the graph package never pays the numba import or a JIT compile. Every
kernel is ``cache=True`` (compiled once per argument-type signature, then loaded
from ``__pycache__``) and ``nogil=True``.

**Random numbers.** A kernel call gets a 63-bit ``seed`` (one raw draw per batch
from the sampler's NumPy generator, so :meth:`NeighborSampler.state_dict`
reproduces it) and a ``stream`` number (the call's index within the batch). Its
draws come from a SplitMix64 sequence started at ``mix(seed ^ stream * golden)``,
each 64-bit output giving two 32-bit draws: the same seed, graph and arguments
give the same sample, on any machine. A uniform integer in ``[0, n)`` is
``(u32 * n) >> 32`` for a 32-bit draw ``u32`` (Lemire's multiply-shift without
rejection: each value's probability is off by less than ``n / 2**32`` relative,
e.g. ``< 1e-6`` for degrees up to 4 k).

**Speed.** :func:`sample_hop` is a few passes over the frontier and its edges.
The random reads (rows of ``indptr``, positions in ``indices``, map entries) are
tiny copy loops with software prefetches a few dozen elements ahead, kept scalar
(see :func:`_scalar`), so that many cache misses are in flight at once; drawing
and relabelling run over sequential arrays. The global -> local maps are never
reset (see ``node_map`` there).
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import binding, ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S32 = np.uint64(32)
_SMALL_K = 8  # fanouts up to this use the branch-free Floyd loop
# Prefetch distances (elements) of the random-access loops, tuned on the
# benchmark graph: rows of the frontier's nodes (pass 1), positions in indices
# (pass 3) and neighbour ids in the map (pass 4).
_AHEAD_ROWS = 16
_AHEAD = 64
_LO32 = np.uint64(0xFFFFFFFF)
_MAP_MAX = 2**31 - 1  # int32 map entries
# The intrinsic's name mangles its pointer type (opaque pointers from LLVM 15).
_PREFETCH = (
    "llvm.prefetch.p0" if binding.llvm_version_info >= (15,) else "llvm.prefetch.p0i8"
)


@intrinsic
def _prefetch(typingctx, arr, idx):
    """Software prefetch of ``arr[idx]`` (``llvm.prefetch``: read, keep in all
    cache levels). Random reads are issued this way a few dozen elements ahead,
    so that many cache misses are in flight at once."""
    sig = types.void(arr, idx)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(
            context, builder, aryty, ary, [args[1]], wraparound=False
        )
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, _PREFETCH)
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _scalar(typingctx):
    """An empty ``asm sideeffect``: keeps LLVM from vectorising the loop that
    contains it (into AVX-512 gathers and scatters, for the random-access loops
    that write the maps; scalar code with prefetches was as fast or faster on
    AMD Zen 4)."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.VoidType(), [])
        builder.call(ir.InlineAsm(fnty, "", "", side_effect=True), [])
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(cache=True, nogil=True, inline="always")
def _mix(z: np.uint64) -> np.uint64:
    """SplitMix64 finaliser (a bijection of 64-bit words)."""
    z = (z ^ (z >> _S30)) * _MUL1
    z = (z ^ (z >> _S27)) * _MUL2
    return z ^ (z >> _S31)


@numba.njit(cache=True, nogil=True)
def map_seeds(node_map, base, ids):
    """Seed ``i`` gets local id ``i``: ``node_map[ids[i]] = base + i``. Returns
    the first ``i`` whose id was already mapped (a duplicate), or ``-1``."""
    if base + ids.shape[0] > _MAP_MAX:
        raise OverflowError("sampler map overflow: batch too large")
    for i in range(ids.shape[0]):
        _scalar()
        g = ids[i]
        if node_map[g] >= base:
            return i
        node_map[g] = base + i
    return -1


@numba.njit(cache=True, nogil=True)
def sample_hop(  # noqa: PLR0917 - numba has no keyword-only arguments
    indptr,
    indices,
    weight,
    frontier,
    loc0,
    num_rel,
    slots,
    ks,
    replace,
    node_map,
    base,
    count,
    final,
    seed,
    stream,
):
    """One hop of one relation group for one frontier, fused.

    Args:
        indptr, indices: the group's node-major in-neighbour CSR (row
            ``v * num_rel + slot`` lists the sources of ``v`` along ``slot``).
        weight: per-position edge weights (``float32``), or an empty array.
        frontier: global ids (``int64``) of the destination nodes to expand; their
            local ids are ``loc0, loc0 + 1, ...``.
        slots, ks: the relation slots to sample and their fanouts (``-1``: all).
        replace: ``k`` uniform draws per node (none if its degree is 0) instead of
            a uniform ``min(deg, k)``-subset (Floyd's algorithm).
        node_map, base, count: the source type's global -> local map, an
            ``int32`` array never reset: an entry ``v`` means local id
            ``v - base`` if ``base <= v < base + count`` (``count`` nodes of the
            type are in the batch so far), unseen if ``v < base`` (the caller
            moves ``base`` past every value written in a batch). New sources get
            local ids ``count, count + 1, ...`` in order of appearance.
        final: no later call of this batch reads ``node_map``: the new ids'
            entries are left as claims (``>= base + count``), not local ids.
        seed, stream: see the module docstring.

    Returns:
        ``(out, sizes, new, w)``: slot ``j``'s edges are
        ``out[2 * o_j : 2 * (o_j + sizes[j])]`` with ``o_j = sum(sizes[:j])``,
        laid out as ``[source locals..., target locals...]`` (a contiguous
        ``[2, sizes[j]]`` edge index); ``new`` are the newly discovered source
        ids in local-id order; ``w`` the weights of the edges (``w[o_j:...]``, empty
        when ``weight`` is). Entries up to ``base + count + sum(sizes)`` (excluded)
        of ``node_map`` may have been written.
    """
    n = frontier.shape[0]
    ns = slots.shape[0]
    kmax = 0
    for j in range(ns):
        kmax = max(kmax, ks[j])
    # Pass 1: row bounds. Random reads are done in tiny loops that only copy
    # (here and below), so that many cache misses are in flight at once; the
    # rows of a node are adjacent, so its reads share a cache line.
    nq = n * ns  # row q = i * ns + j: frontier node i, slot j
    lo = np.empty(nq, np.int64)
    hi = np.empty(nq, np.int64)
    for i in range(min(n, _AHEAD_ROWS)):
        _prefetch(indptr, frontier[i] * num_rel)
        _prefetch(indptr, frontier[i] * num_rel + num_rel)
    for i in range(n):
        if i + _AHEAD_ROWS < n:
            _prefetch(indptr, frontier[i + _AHEAD_ROWS] * num_rel)
            _prefetch(indptr, frontier[i + _AHEAD_ROWS] * num_rel + num_rel)
        row0 = frontier[i] * num_rel
        for j in range(ns):
            r = row0 + slots[j]
            lo[i * ns + j] = indptr[r]
            hi[i * ns + j] = indptr[r + 1]
    sizes = np.zeros(ns, np.int64)
    for j in range(ns):
        k = ks[j]
        tot = 0
        for q in range(j, nq, ns):
            d = hi[q] - lo[q]
            if k < 0:
                tot += d
            elif replace:
                tot += k if d > 0 else 0
            else:
                tot += min(d, k)
        sizes[j] = tot
    total = 0
    for j in range(ns):
        total += sizes[j]
    # Slot j's edges: out[2 * o_j : 2 * o_j + sizes[j]] sources, then as many
    # targets. Pass 2 writes kmax slots per row whatever its take (no
    # data-dependent branches), hence the kmax slack at the ends.
    out = np.empty(2 * total + kmax, np.int64)
    pos = np.empty(total + kmax, np.int64)

    # Pass 2: positions and target locals, slot by slot. Draw e of a row uses
    # the high (even e) or low (odd e) half of a SplitMix64 output.
    state = _mix(np.uint64(seed) ^ (np.uint64(stream) * _GOLDEN))
    z = state
    o = 0  # o_j
    for j in range(ns):
        k = ks[j]
        c = o
        dst = o + sizes[j]  # out[dst + c] is the target of edge c
        if k < 0:  # all neighbours
            for i in range(n):
                s = lo[i * ns + j]
                d = hi[i * ns + j] - s
                for e in range(d):
                    pos[c + e] = s + e
                    out[dst + c + e] = loc0 + i
                c += d
        elif replace:  # k uniform draws, none if deg == 0
            for i in range(n):
                s = lo[i * ns + j]
                d = hi[i * ns + j] - s
                nd = np.uint64(d)
                for e in range(k):
                    if e & 1 == 0:
                        state += _GOLDEN
                        z = _mix(state)
                        r = z >> _S32
                    else:
                        r = z & _LO32
                    pos[c + e] = s + np.int64((r * nd) >> _S32)
                    out[dst + c + e] = loc0 + i
                c += k if d > 0 else 0
        elif k <= _SMALL_K:
            # Floyd: t = min(d, k); for jj = d - t .. d - 1 pick x in [0, jj],
            # or jj if x was already picked: a uniform t-subset of range(d)
            # (a random permutation of it when t == d). Branch-free: all k
            # slots are written, the k - t extra ones are overwritten by the
            # next row. Draws 0 and 1 (one SplitMix64 output) are unrolled.
            for i in range(n):
                q = i * ns + j
                s = lo[q]
                d = hi[q] - s
                t = min(d, k)
                dl = loc0 + i
                b = d - t  # jj of draw 0
                state += _GOLDEN
                z = _mix(state)
                p0 = s + np.int64(((z >> _S32) * np.uint64(b + 1)) >> _S32)
                pos[c] = p0
                out[dst + c] = dl
                if k > 1:
                    p1 = s + np.int64(((z & _LO32) * np.uint64(b + 2)) >> _S32)
                    if p1 == p0:
                        p1 = s + b + 1
                    pos[c + 1] = p1
                    out[dst + c + 1] = dl
                for e in range(2, k):
                    jj = b + e
                    if e & 1 == 0:
                        state += _GOLDEN
                        z = _mix(state)
                        r = z >> _S32
                    else:
                        r = z & _LO32
                    p = s + np.int64((r * np.uint64(jj + 1)) >> _S32)
                    for f in range(c, c + e):
                        if pos[f] == p:
                            p = s + jj
                            break
                    pos[c + e] = p
                    out[dst + c + e] = dl
                c += t
        else:  # the same, but rows with deg <= k take all, no draw
            for i in range(n):
                s = lo[i * ns + j]
                d = hi[i * ns + j] - s
                if d <= k:
                    for e in range(d):
                        pos[c + e] = s + e
                        out[dst + c + e] = loc0 + i
                    c += d
                    continue
                for e in range(k):
                    jj = d - k + e
                    if e & 1 == 0:
                        state += _GOLDEN
                        z = _mix(state)
                        r = z >> _S32
                    else:
                        r = z & _LO32
                    p = s + np.int64((r * np.uint64(jj + 1)) >> _S32)
                    for f in range(c, c + e):  # O(k^2) per row, as in torch
                        if pos[f] == p:
                            p = s + jj
                            break
                    pos[c + e] = p
                    out[dst + c + e] = loc0 + i
                c += k
        o += sizes[j]

    # Pass 3: neighbour ids (each one's map entry is prefetched for pass 4),
    # weights.
    nbr = np.empty(total, np.int64)
    for c in range(min(total, _AHEAD)):
        _prefetch(indices, pos[c])
    for c in range(total):
        if c + _AHEAD < total:
            _prefetch(indices, pos[c + _AHEAD])
        g = indices[pos[c]]
        nbr[c] = g
        _prefetch(node_map, g)
    w = np.empty(total if weight.shape[0] > 0 else 0, weight.dtype)
    if weight.shape[0] > 0:
        for c in range(min(total, _AHEAD)):
            _prefetch(weight, pos[c])
        for c in range(total):
            if c + _AHEAD < total:
                _prefetch(weight, pos[c + _AHEAD])
            w[c] = weight[pos[c]]

    # Pass 4: global -> local ids, the first appearance of a new id takes the
    # next local id. The copy loop reads the map and claims every unseen id for
    # its first appearance c (entry base + count + c); a sequential loop then
    # resolves the local ids; unless final, the new ones are written back.
    if base + count + total > _MAP_MAX:
        raise OverflowError("sampler map overflow: batch too large")
    seen = base + count
    for c in range(min(total, _AHEAD)):
        _prefetch(node_map, nbr[c])
    for c in range(total):
        _scalar()
        if c + _AHEAD < total:
            _prefetch(node_map, nbr[c + _AHEAD])
        g = nbr[c]
        v = np.int64(node_map[g])
        pos[c] = v
        if v < base:
            node_map[g] = seen + c
    new = np.empty(total, np.int64)
    num_new = 0
    o = 0
    for j in range(ns):
        for c in range(o, o + sizes[j]):
            v = pos[c] - base
            if v < 0:  # first appearance
                v = count + num_new
                new[num_new] = nbr[c]
                num_new += 1
            elif v >= count:  # claimed by its first appearance, resolved
                v = pos[v - count]
            pos[c] = v
            out[o + c] = v
        o += sizes[j]
    if not final:
        for r in range(num_new):
            _scalar()
            node_map[new[r]] = seen + r
    return out[: 2 * total], sizes, new[:num_new], w
