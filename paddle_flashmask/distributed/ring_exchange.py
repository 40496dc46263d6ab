"""One ring step: send tensors to the next rank, receive from the previous
one, while the caller computes.

NCCL: batch_isend_irecv on the group (asynchronous on the comm stream).
Gloo: its send/recv block and tag each message with a per-group counter that
every operation advances, so a ring of blocking calls on one group mismatches
tags. We give each direction r -> r+1 its own 2-rank group (each group then
carries a single ordered stream of messages) and run the blocking calls on a
background thread, even ranks sending first and odd ranks receiving first so
no cycle of blocked senders forms (also for odd W: rank 1 always receives
first, which unblocks the chain).
"""
import threading

import paddle.distributed as dist

_GLOO_PAIR_GROUPS = {}


def _gloo_pair_groups(cp):
    """(group to the next rank, group from the previous rank), built once per
    CP group; new_group is collective, so every rank builds all W groups in order."""
    key = tuple(cp.ranks)
    if key not in _GLOO_PAIR_GROUPS:
        w = cp.world_size
        pairs = [dist.new_group([cp.ranks[i], cp.ranks[(i + 1) % w]])
                 for i in range(w)]
        _GLOO_PAIR_GROUPS[key] = pairs
    pairs = _GLOO_PAIR_GROUPS[key]
    return pairs[cp.rank], pairs[(cp.rank - 1) % cp.world_size]


class _Done:
    def wait(self):
        pass


class _ThreadHandle:
    def __init__(self, fn):
        self._error = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn):
        try:
            fn()
        except BaseException as e:  # re-raised on wait(), in the caller's thread
            self._error = e

    def wait(self):
        self._thread.join()
        if self._error is not None:
            raise self._error


class _TaskHandle:
    def __init__(self, tasks):
        self._tasks = tasks

    def wait(self):
        for t in self._tasks:
            t.wait()


class RingExchange:
    def __init__(self, cp):
        self.cp = cp
        self.next = cp.global_rank(cp.rank + 1)
        self.prev = cp.global_rank(cp.rank - 1)

    def start(self, transfers):
        """transfers: list of (send_tensor, recv_buffer) of equal shapes. Returns
        a handle; after handle.wait() each recv_buffer holds the previous rank's tensor."""
        if not transfers or self.cp.world_size == 1:
            return _Done()
        if transfers[0][0].place.is_cpu_place():
            return self._start_gloo(transfers)
        ops = []
        for send, recv in transfers:
            ops.append(dist.P2POp(dist.isend, send, self.next, self.cp.group))
            ops.append(dist.P2POp(dist.irecv, recv, self.prev, self.cp.group))
        return _TaskHandle(dist.batch_isend_irecv(ops))

    def _start_gloo(self, transfers):
        to_next, from_prev = _gloo_pair_groups(self.cp)
        send_first = self.cp.rank % 2 == 0

        def run():
            def sends():
                for send, _ in transfers:
                    dist.send(send, self.next, group=to_next)

            def recvs():
                for _, recv in transfers:
                    dist.recv(recv, self.prev, group=from_prev)

            (sends if send_first else recvs)()
            (recvs if send_first else sends)()

        return _ThreadHandle(run)
