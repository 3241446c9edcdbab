"""The answers the dispatcher sends itself: served requests' responses (``reply='dispatcher'``)
and the drop answers to refused requests.

Manual
------
:class:`Replies` sends on the dispatcher's :class:`~tailgate.dispatch.live.wire.BatchSocket`,
one ``sendmmsg`` a burst, and counts in the dispatcher's counters (``c``):

* :meth:`Replies.send` — responses; a full socket buffer is waited out briefly (50 waits of up to
  1 ms), then what still did not leave is counted in ``dispatcher_send_errors``, the rest in
  ``dispatcher_sent``;
* :meth:`Replies.drop` — requests refused (a full policy queue or request table, or shed for
  waiting too long) are answered at once with ``size = SIZE_DROPPED``, so the client knows;
  counted in ``dropped`` and, as sent, ``drop_answers``. Not retried: a lost drop answer is the
  client's ``lost``;
* :meth:`Replies.refuse` — the same answer without counting a drop (requests abandoned at a
  stop or with a dead worker, which the dispatcher counts as ``abandoned``).

Example::

    replies = Replies(bs, counters.c)
    replies.send(encode_responses(req_id, type_id, 0), ip, port)
"""

from __future__ import annotations

import select

from tailgate.dispatch.live.wire import SIZE_DROPPED, BatchSocket, encode_responses


class Replies:
    """Responses and drop answers on the dispatcher's socket (see the module manual)."""

    def __init__(self, bs: BatchSocket, c: dict):
        self.bs = bs
        self.c = c

    def send(self, rows, ip, port) -> int:
        """Send responses (one ``sendmmsg`` a burst); returns how many left."""
        bs = self.bs
        m = len(rows)
        sent = bs.send_burst(rows, None, ip, port)
        tries = 0
        while sent < m and tries < 50:
            tries += 1
            select.select((), (bs.fd,), (), 0.001)
            sent += bs.send_burst(rows[sent:], None, ip[sent:], port[sent:])
        self.c["dispatcher_sent"] += sent
        self.c["dispatcher_send_errors"] += m - sent
        return sent

    def drop(self, req_id, type_id, ip, port) -> None:
        """Answer refused requests with size = SIZE_DROPPED."""
        self.c["dropped"] += len(req_id)
        self.c["drop_answers"] += self.refuse(req_id, type_id, ip, port)

    def refuse(self, req_id, type_id, ip, port) -> int:
        """Answer requests with size = SIZE_DROPPED, counting nothing; returns how many left."""
        if len(req_id) == 0:
            return 0
        rows = encode_responses(req_id, type_id, SIZE_DROPPED)
        return self.bs.send_burst(rows, None, ip, port)
