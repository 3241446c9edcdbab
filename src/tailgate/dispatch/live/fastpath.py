"""The dispatcher's compiled kernels: one call per burst instead of ~30 numpy calls.

Manual
------
* :func:`stage_requests` decodes a received burst (PSP, little-endian) into the request table
  and counts what it refuses (``K_*``: short, oversize, run time above the limit, undeclared
  type, table slot still live) and the hellos it found (:data:`~tailgate.dispatch.live.wire.HELLO_MAGIC`);
  it stamps each request's arrival (``t_arr``) and keeps the mean run time per type that sets
  the automatic queueing-delay limit (:func:`auto_queue_delay_ns`);
* :func:`take_notices` copies every waiting completion notice off the workers' rings;
* :func:`fill_tx` writes assignments into the workers' rings (the caller publishes the tails);
* :func:`fast_loop` is a whole dispatcher round without time slicing: arrivals to the policy,
  then cycles of notices → completions → assignments → ring entries, for as long as requests run
  and something moved within ``idle_ns`` (at most ``budget_ns``), so a zero-work request costs a
  hand-off through shared memory rather than a trip through the Python loop. It calls the
  policy's own kernels (``arrive_one``/``complete_one``/``assign_all``, the simulator's), reads
  the cycle counter as its clock, and leaves in ``LoopRef.reg`` (registers ``R_*``) the counts,
  the responses to send (``resp[:reg[R_NRESP]]``), the parked workers to wake
  (``wake[:reg[R_NWAKE]]``) and assignments a full ring refused (``held[:reg[R_NHELD]]``).
  An assignment whose request has waited longer than its type's queueing-delay limit
  (:func:`queue_delay_limit_ns`) is *shed* instead: the worker is released
  (:func:`~tailgate.dispatch.policy.release_one`), the client gets a ``SIZE_DROPPED`` answer,
  ``reg[R_SHED]`` counts it, and the policy is asked again.

Queueing-delay limits (``qd_lim``, 256 entries, by wire type id; ids above 255 use entry 0):
an entry > 0 is that type's limit in ns, 0 means no limit, -1 the automatic one, which
``qd_state[QD_LIMIT]`` holds: ``max(QD_AUTO_MULT × the longest mean run time per type received
so far, QD_AUTO_MIN_NS)`` — 20 × the longest type's mean service time as run, at least 1 s.

:class:`LoopRef` holds the arrays ``fast_loop`` works on as one struct reference (a compiled call
unboxes one object instead of ~25 arrays, ~100 ns each). ``fast_loop`` is long on purpose: it is
one compiled loop whose pieces share registers and locals, and splitting it into calls that numba
may not inline would add work to every cycle.

Publication order on the rings (x86 total store order): write the entries, :func:`fence`, store
the tail; read the tail, :func:`fence`, read the entries, :func:`fence`, store the head.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.experimental import structref

from tailgate.dispatch.live.cpu import fence, rdtsc
from tailgate.dispatch.live.layout import DONE
from tailgate.dispatch.live.ring import HEAD, TAIL
from tailgate.dispatch.live.wire import HELLO_BYTES, HELLO_MAGIC, SIZE_DROPPED
from tailgate.dispatch.policy import arrive_one, assign_all, complete_one, release_one

# counts of stage_requests
K_SHORT, K_OVERSIZE, K_BAD_RUN, K_UNKNOWN, K_TABLE_FULL, K_HELLO, K_N = range(7)

# the automatic queueing-delay limit: QD_AUTO_MULT x the longest mean run time per type, at
# least QD_AUTO_MIN_NS; qd_state holds the longest mean seen and the limit it gives
QD_AUTO_MULT = 20
QD_AUTO_MIN_NS = 1_000_000_000
QD_LONGEST, QD_LIMIT, QD_N = range(3)
QD_TYPES = 256              # qd_lim / qd_obs entries: one per wire type id below 256


@njit(cache=True)
def _u32(row, off):
    return np.int64(row[off]) | (np.int64(row[off + 1]) << 8) | (np.int64(row[off + 2]) << 16) | (np.int64(row[off + 3]) << 24)


@njit(cache=True)
def auto_queue_delay_ns(longest_mean_ns):
    """The automatic queueing-delay limit for a longest mean run time per type (see the manual)."""
    return max(QD_AUTO_MULT * longest_mean_ns, QD_AUTO_MIN_NS)


@njit(cache=True)
def queue_delay_limit_ns(qd_lim, qd_state, type_id):
    """The queueing-delay limit of wire type ``type_id`` in ns (0: none)."""
    lim = qd_lim[type_id if type_id < qd_lim.shape[0] else 0]
    return qd_state[QD_LIMIT] if lim < 0 else lim


@njit(cache=True)
def stage_requests(data, lengths, src_ip, src_port, n, max_run_ns, known_type, run_scale, next_rid, t_mask,
                   t_req_id, t_type, t_run, t_ip, t_port, t_live, t_done, t_stopping, t_arr, now, qd_obs, qd_state,
                   out_rid, out_ptype, out_refused, out_hello, counts):
    """Decode ``n`` received datagrams (PSP, little-endian) and put the well-formed ones in the
    request table, stamped ``now``. Returns ``(staged, refused, next_rid)``:
    ``out_rid/out_ptype[:staged]`` go to the policy (type 0 for an undeclared id),
    ``out_refused[:refused]`` are burst indices refused because their table slot is still live,
    ``out_hello[:counts[K_HELLO]]`` burst indices of hellos. Malformed ones are only counted.
    ``qd_obs`` (run-time sums and counts per type) and ``qd_state`` (the longest mean, the
    automatic limit) are updated with every staged request."""
    slot_bytes = data.shape[1]
    k = 0
    n_ref = 0
    rid = next_rid
    longest = qd_state[QD_LONGEST]
    for i in range(n):
        length = lengths[i]
        if length < 16:
            if length == HELLO_BYTES and _u32(data[i], 0) == HELLO_MAGIC:
                out_hello[counts[K_HELLO]] = i
                counts[K_HELLO] += 1
                continue
            counts[K_SHORT] += 1
            continue
        if length > slot_bytes:
            counts[K_OVERSIZE] += 1
            continue
        row = data[i]
        run = _u32(row, 12)
        if run > max_run_ns:
            counts[K_BAD_RUN] += 1
            continue
        slot = rid & t_mask
        rid += 1
        if t_live[slot]:
            counts[K_TABLE_FULL] += 1
            out_refused[n_ref] = i
            n_ref += 1
            continue
        type_id = _u32(row, 4)
        ptype = type_id
        if type_id >= known_type.shape[0] or not known_type[type_id]:
            counts[K_UNKNOWN] += 1
            ptype = 0
        t_req_id[slot] = _u32(row, 0)
        t_type[slot] = type_id
        t_run[slot] = run if run_scale == 1.0 else np.int64(run * run_scale)
        t_ip[slot] = src_ip[i]
        t_port[slot] = src_port[i]
        t_arr[slot] = now
        ot = type_id if type_id < QD_TYPES else 0
        qd_obs[0, ot] += t_run[slot]
        qd_obs[1, ot] += 1
        mean = qd_obs[0, ot] // qd_obs[1, ot]
        longest = max(longest, mean)
        t_live[slot] = True
        t_done[slot] = False
        t_stopping[slot] = False
        out_rid[k] = rid - 1
        out_ptype[k] = ptype
        k += 1
    if longest != qd_state[QD_LONGEST]:
        qd_state[QD_LONGEST] = longest
        qd_state[QD_LIMIT] = auto_queue_delay_ns(longest)
    return k, n_ref, rid


@njit(cache=True)
def take_notices(idx, entries, out_w, out_notes, taken):
    """Copy every waiting completion notice (oldest first per ring); ``taken[r]`` per ring. The
    caller publishes the heads afterwards (``idx[:, HEAD] += taken``), after this copy returned."""
    cap = entries.shape[1]
    k = 0
    for r in range(idx.shape[0]):
        head = idx[r, HEAD]
        m = idx[r, TAIL] - head
        taken[r] = m
        for j in range(m):
            if k >= out_w.shape[0]:
                taken[r] = j
                break
            e = entries[r, (head + j) % cap]
            out_w[k] = r
            for f in range(e.shape[0]):
                out_notes[k, f] = e[f]
            k += 1
    return k


@njit(cache=True)
def fill_tx(workers, rids, t_mask, t_req_id, t_type, t_run, t_ip, t_port, idx, entries, seq0,
            w_seq, w_rid, w_slice_start, w_running, now, pushed):
    """Write each assignment into its worker's ring (entries only: the caller publishes the
    tails after this returns). ``pushed[i]`` is False where the ring is full."""
    cap = entries.shape[1]
    seq = seq0
    n_ok = 0
    for i in range(workers.shape[0]):
        w = workers[i]
        tail = idx[w, TAIL]
        if tail - idx[w, HEAD] >= cap:
            pushed[i] = False
            continue
        slot = rids[i] & t_mask
        e = entries[w, tail % cap]
        e[0] = seq
        e[1] = t_req_id[slot]
        e[2] = t_type[slot]
        e[3] = t_run[slot]
        e[4] = t_ip[slot]
        e[5] = t_port[slot]
        e[6] = rids[i]
        w_seq[w] = seq
        w_rid[w] = rids[i]
        w_slice_start[w] = now
        w_running[w] = True
        pushed[i] = True
        seq += 1
        n_ok += 1
    return n_ok


# registers of the fast loop (LoopRef.reg)
(R_COMPLETED, R_DISPATCHED, R_STALE, R_DROPPED, R_NRESP, R_NWAKE, R_NEXT_SEQ, R_NHELD, R_RING_FULL,
 R_CYCLES, R_SHED, R_N) = range(12)

#: The fast loop's arrays, in LoopRef's field order.
LOOP_FIELDS = ("reg", "t_mask", "rx_idx", "rx_ent", "tx_idx", "tx_ent", "parked", "w_seq", "w_rid",
               "w_slice_start", "w_running", "t_req_id", "t_type", "t_run", "t_ip", "t_port", "t_live",
               "st_rid", "st_ptype", "resp", "resp_ip", "resp_port", "wake", "held", "t_arr", "qd_lim", "qd_state",
               "pushed")


@structref.register
class _LoopType(types.StructRef):
    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(typ)) for name, typ in fields)


class LoopRef(structref.StructRefProxy):
    """The dispatcher's arrays as the fast loop sees them (same arrays, no copy)."""


structref.define_proxy(LoopRef, _LoopType, list(LOOP_FIELDS))


@njit(cache=True)
def _respond(d, slot, size):
    """Queue the response to the request in table slot ``slot`` (sent by the caller, one
    ``sendmmsg`` per loop)."""
    i = d.reg[R_NRESP]
    d.resp[i, 0] = d.t_req_id[slot]
    d.resp[i, 1] = d.t_type[slot]
    d.resp[i, 2] = size
    d.resp_ip[i] = d.t_ip[slot]
    d.resp_port[i] = d.t_port[slot]
    d.reg[R_NRESP] = i + 1


@njit(cache=True)
def fast_loop(pst, d, k, now0, ns_per_tsc, reply, idle_ns, budget_ns):
    """One dispatcher round without time slicing (see the module manual): hand the ``k`` staged
    requests to the policy (refused ones get a SIZE_DROPPED answer), then cycle — take completion
    notices (queueing the responses when ``reply``), complete, assign, write and publish the
    workers' entries — while requests run and something moved within ``idle_ns``, at most
    ``budget_ns``. Stops early when a parked worker must be woken or the response buffer is
    nearly full. Returns True if anything moved. Long on purpose: one compiled loop whose steps
    share registers and locals; calls numba might not inline would cost every cycle."""
    reg = d.reg
    mask = d.t_mask
    tsc0 = rdtsc()
    moved_any = False
    for i in range(k):
        rid = d.st_rid[i]
        if not arrive_one(pst, rid, d.st_ptype[i], now0):
            slot = rid & mask
            d.t_live[slot] = False
            _respond(d, slot, SIZE_DROPPED)
            reg[R_DROPPED] += 1
    n_w = d.rx_idx.shape[0]
    rcap = d.rx_ent.shape[1]
    tcap = d.tx_ent.shape[1]
    room = d.resp.shape[0] - 2 * n_w     # a cycle queues at most n_w responses and n_w shed answers
    last = tsc0
    while True:
        reg[R_CYCLES] += 1
        fence()
        moved = False
        for r in range(n_w):
            head = d.rx_idx[r, HEAD]
            tail = d.rx_idx[r, TAIL]
            if tail == head:
                continue
            fence()                        # the entries are read after the tail
            for j in range(head, tail):
                e = d.rx_ent[r, j % rcap]
                if e[1] != DONE:           # no preemption without time slicing
                    reg[R_STALE] += 1
                    continue
                if reply:
                    _respond(d, e[4] & mask, 0)
                if e[0] != d.w_seq[r]:
                    reg[R_STALE] += 1
                    continue
                d.w_running[r] = False
                d.t_live[d.w_rid[r] & mask] = False
                complete_one(pst, r, e[3])
                reg[R_COMPLETED] += 1
            fence()                        # free the slots only after the copy
            d.rx_idx[r, HEAD] = tail
            moved = True
        t = rdtsc()
        now = now0 + np.int64((t - tsc0) * ns_per_tsc)
        n = assign_all(pst, now)
        n_push = 0
        shed = False
        for i in range(n):
            w = pst.out_w[i]
            rid = pst.out_r[i]
            slot = rid & mask
            lim = queue_delay_limit_ns(d.qd_lim, d.qd_state, d.t_type[slot])
            if lim > 0 and now - d.t_arr[slot] > lim:      # waited too long: shed, not run
                release_one(pst, w)
                d.t_live[slot] = False
                _respond(d, slot, SIZE_DROPPED)
                reg[R_SHED] += 1
                shed = True
                continue
            tail = d.tx_idx[w, TAIL]
            if tail - d.tx_idx[w, HEAD] >= tcap:
                d.held[reg[R_NHELD], 0] = w
                d.held[reg[R_NHELD], 1] = rid
                reg[R_NHELD] += 1
                reg[R_RING_FULL] += 1
                continue
            e = d.tx_ent[w, tail % tcap]
            seq = reg[R_NEXT_SEQ]
            e[0] = seq
            e[1] = d.t_req_id[slot]
            e[2] = d.t_type[slot]
            e[3] = d.t_run[slot]
            e[4] = d.t_ip[slot]
            e[5] = d.t_port[slot]
            e[6] = rid
            reg[R_NEXT_SEQ] = seq + 1
            d.w_seq[w] = seq
            d.w_rid[w] = rid
            d.w_slice_start[w] = now0
            d.w_running[w] = True
            fence()                        # publish after the entry is written
            d.tx_idx[w, TAIL] = tail + 1
            reg[R_DISPATCHED] += 1
            d.pushed[n_push] = w
            n_push += 1
        if n_push:
            fence()                        # Dekker: the tails are visible before `parked` is read
            for i in range(n_push):
                w = d.pushed[i]
                if d.parked[w] != 0:
                    d.wake[reg[R_NWAKE]] = w
                    reg[R_NWAKE] += 1
        if n:
            moved = True
        if moved:
            last = t
            moved_any = True
        if reg[R_NWAKE] or reg[R_NHELD] or reg[R_NRESP] > room or ns_per_tsc <= 0:
            break
        if shed and (t - tsc0) * ns_per_tsc < budget_ns:
            continue                       # a worker was freed: ask the policy again
        running = False
        for w in range(n_w):
            if d.w_running[w]:
                running = True
                break
        if not running or (t - last) * ns_per_tsc >= idle_ns or (t - tsc0) * ns_per_tsc >= budget_ns:
            break
    return moved_any
