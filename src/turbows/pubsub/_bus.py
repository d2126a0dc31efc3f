"""The Redis Streams bus: publishing, the per-process reader, resume and health."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import random
import secrets
import sys
import time
from typing import Any, Deque, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union
from urllib.parse import parse_qs, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .._enums import State
from .._resume import RESET, MessageId, envelopes
from ..asyncio._exceptions import WebSocketClosed
from ..asyncio._fanout import SLOW_CONSUMER, Batch, Fanout, _push
from ..asyncio._protocol import WebSocket
from ..exceptions import InvalidStateError, TurboWSError

__all__ = ["Bus", "OutboxFull", "RedisUnavailable"]

logger = logging.getLogger("turbows.pubsub")

if sys.version_info >= (3, 11):
    _timeout: Any = asyncio.timeout
else:  # the reader's connection keeps redis-py's own timeouts (see Bus._xread)
    _timeout = None

#: Redis connections per client of a Bus (its publisher and its reader) at most.
_MAX_CONNECTIONS = 16

#: Seconds close() waits for its tasks to stop.
_CLOSE_TIMEOUT = 5.0

#: Errors that mean "Redis cannot be reached now": retried with backoff, reported by health.
_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError, asyncio.TimeoutError)

# The dataset's epoch: read, or created once from the candidate (KEYS[1]; ARGV[n]). A dataset
# that lost its keys gets a new one, so an id from before the loss is recognised as foreign.
_GET_EPOCH = """
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[%d]
  redis.call('SET', KEYS[1], epoch)
end
"""

# One call stores a whole batch of the outbox, atomically.
# KEYS: the epoch, this bus's batch key, then each channel's seq key and stream (pairs), and
# the idempotency keys publishers gave (each once). ARGV: maxlen, ttl ms, candidate epoch, the
# batch's number, the layout: per message "c,u;" (c: the index in KEYS of its channel's seq
# key, its stream follows; u: the index of its idempotency key, 0 for none), then the
# messages' data (one argument per message: each argument costs the client an encoding step).
# Returns {epoch, then per message its seq (an integer), or the id an idempotency key had
# (a string "E-S"), or "!" and the error that kept it from being stored}.
# The sequence counts a channel's messages (1, 2, 3, ...: contiguous, so a trimmed history
# shows as a first entry after since + 1), and the stream entry ids are the sequence numbers
# themselves ("seq-0"): one INCRBY per channel reserves a batch's numbers, and gives back
# those a failed XADD left unused (the entries stored are a prefix of the channel's). The
# bus's own retries need no key per message: it sends one batch at a time and retries it
# unchanged, so its batch key (with the TTL) remembers the number and the answer (JSON) of
# the last batch stored, which a retry of that batch gets again ({"R", answer}). Every write
# after the first goes through pcall, so that the script either fails before storing
# anything or stores the batch and answers for each message.
_PUBLISH = (
    (_GET_EPOCH % 3)
    + """
local last = redis.call('GET', KEYS[2])
if last then
  local number, answer = string.match(last, '^([^|]*)|(.*)$')
  if number == ARGV[4] then return {'R', answer} end
end
local maxlen, ttl = ARGV[1], ARGV[2]
local out, chans, users, count, first = {epoch}, {}, {}, {}, {}
local m = 0
for c, u in string.gmatch(ARGV[5], '(%d+),(%d+);') do
  m = m + 1
  c, u = tonumber(c), tonumber(u)
  chans[m], users[m] = c, u
  if u > 0 and first[u] then
    out[m + 1] = false  -- the same key as an earlier message of the batch: its answer
  else
    local id = false
    if u > 0 then
      first[u] = m
      id = redis.call('GET', KEYS[u])
    end
    if id then out[m + 1] = id else count[c] = (count[c] or 0) + 1 end
  end
end
local base, nxt, failed = {}, {}, {}
for c, k in pairs(count) do
  local top = redis.pcall('INCRBY', KEYS[c], k)
  if type(top) == 'table' then failed[c] = '!' .. top.err else base[c] = top - k; nxt[c] = top - k end
end
for j = 1, m do
  local c, u = chans[j], users[j]
  if out[j + 1] == nil then
    if failed[c] then
      out[j + 1] = failed[c]
    else
      local seq = nxt[c] + 1
      local r = redis.pcall('XADD', KEYS[c + 1], 'MAXLEN', '~', maxlen, seq .. '-0', 'd', ARGV[j + 5])
      if type(r) == 'table' and r.err then
        failed[c] = '!' .. r.err
        out[j + 1] = failed[c]
      else
        nxt[c] = seq
        out[j + 1] = seq
        if u > 0 then redis.pcall('SET', KEYS[u], epoch .. '-' .. seq, 'PX', ttl) end
      end
    end
  end
end
for c, k in pairs(count) do
  if base[c] and nxt[c] < base[c] + k then redis.pcall('DECRBY', KEYS[c], base[c] + k - nxt[c]) end
end
for j = 1, m do
  if out[j + 1] == false then out[j + 1] = out[first[users[j]] + 1] end
end
redis.pcall('SET', KEYS[2], ARGV[4] .. '|' .. cjson.encode(out), 'PX', ttl)
return out
"""
)

# KEYS: epoch, then channels' seq keys; ARGV: candidate epoch. Returns {epoch, last seqs...}.
_EPOCH = (
    (_GET_EPOCH % 1)
    + """
local out = {epoch}
for i = 2, #KEYS do out[i] = redis.call('GET', KEYS[i]) or '0' end
return out
"""
)


#: Publishes stored by one script call at most. Redis runs nothing else meanwhile (about
#: 3.5 us per message: 2 ms at most), and a bigger batch shares the round trip and the fsync
#: among more messages. Measured with python -m turbows.bench --only pubsub-2w50c (2 workers
#: x 50 connections through Redis against the in-process Fanout in the same run): 256 gave
#: 0.55-0.57x, 512 0.71-0.72x, 1024 0.76-0.79x.
PUBLISH_BATCH = 512


class OutboxFull(TurboWSError):
    """A publish found the outbox full: Redis has been unreachable (or slow) for as long as
    it took to fill it. Nothing was queued."""


class RedisUnavailable(TurboWSError):
    """Redis could not be reached for a request that cannot wait (a subscriber's resume)."""


def _candidate_epoch() -> str:
    return str(secrets.randbits(48) or 1)


def _seq_of(entry_id: Union[bytes, str]) -> int:
    if isinstance(entry_id, bytes):
        return int(entry_id.partition(b"-")[0])
    return int(entry_id.partition("-")[0])


def _raw(response: Any, **options: Any) -> Any:
    return response


# Stream entries are taken as the parser gives them, ``[id, [b"d", data]]``, rather than
# through redis-py's reply callbacks, which build a tuple and a dict per entry.
_RAW_STREAM_COMMANDS = ("XRANGE", "XREVRANGE")


def _data(fields: List[bytes]) -> bytes:
    """The data of a stream entry from its fields ``[b"d", data]``, as :data:`_PUBLISH`
    writes them (else the value of its field ``d``)."""
    for i in range(0, len(fields) - 1, 2):
        if fields[i] == b"d":
            return fields[i + 1]
    raise ValueError(f"a stream entry without the field d: {fields[:4]!r}")


class _Many:
    """Stands in the outbox for the futures of the messages of one :meth:`Bus.publish_many`
    (as much of the future API as the outbox uses): one future gets all their ids."""

    __slots__ = ("future", "ids", "left", "error")

    def __init__(self, future: "asyncio.Future[List[MessageId]]", count: int) -> None:
        self.future = future
        self.ids: List[MessageId] = []
        self.left = count
        self.error: Optional[BaseException] = None

    def done(self) -> bool:
        return self.future.done()

    def set_result(self, message_id: MessageId) -> None:
        self.ids.append(message_id)
        self.left -= 1
        if not self.left:
            self._finish()

    def set_exception(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.left -= 1
        if not self.left:
            self._finish()

    def _finish(self) -> None:
        if self.future.done():
            return
        if self.error is not None:
            self.future.set_exception(self.error)
        else:
            self.future.set_result(self.ids)


class Bus:
    """Channels on Redis Streams, fanned out to this process's WebSocket connections.

    ::

        bus = Bus("unix:///run/redis.sock")

        async def handler(ws):
            await bus.subscribe(ws, ["news"])        # resumes from ?since= or Last-Event-ID
            async for message in ws:
                await bus.publish("news", message)

    Every published message gets an id ``epoch-seq`` (:class:`MessageId`) assigned in Redis,
    atomically with its append to the channel's stream. A subscriber that gives the last id
    it received gets every later message of its channels exactly once, then live ones; if
    that is impossible (the history was trimmed past it, Redis lost its data, or the id was
    never issued) it is closed with :data:`RESET` (4010) instead: never a silent gap.

    One reader task per process follows every channel its connections subscribe to, with one
    ``XREAD BLOCK`` for all of them, and fans each batch out with
    :class:`turbows.asyncio.Fanout` (one write per connection per batch; a connection that
    cannot keep up is closed with :data:`turbows.asyncio.SLOW_CONSUMER`, 4008, and resumes
    when it reconnects).

    Args:
        url: the Redis URL (``redis://host:port/db``, ``unix:///path/redis.sock``).
        namespace: prefix of every key the bus uses.
        maxlen: the approximate length each channel's stream is trimmed to (``MAXLEN ~``):
            how much history a resume can reach.
        outbox: publishes that may wait while Redis is unreachable; one more raises
            :class:`OutboxFull`.
        idempotency_ttl: seconds an idempotency key is remembered.
        with_ids: deliver each message in an envelope with its id
            (``{"id":"E-S","channel":"c","data":"..."}``); else the data alone, as text.
        block: seconds one ``XREAD BLOCK`` waits (also how long a new subscription waits at
            most before its history is read).
        batch: entries read per ``XREAD`` at most.
        policy: what happens to a connection that cannot take a whole batch within its write
            limit: ``"later"`` (it gets what fits; the rest is read again from Redis, at its
            pace, and it rejoins live delivery once caught up: no memory held for it beyond
            its limit plus one message, and a reset if the history is trimmed past it
            meanwhile) or ``"close"`` (the same, but a connection that takes nothing for
            ``lag_timeout`` seconds while behind is closed with ``close_code``, by default
            :data:`turbows.asyncio.SLOW_CONSUMER`; it resumes when it reconnects).
        max_delay: the cap of the reconnection backoff (jittered), seconds.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        namespace: str = "turbows",
        maxlen: int = 100_000,
        outbox: int = 10_000,
        idempotency_ttl: float = 600.0,
        with_ids: bool = True,
        block: float = 0.1,
        batch: int = 1024,
        policy: str = "later",
        close_code: int = SLOW_CONSUMER,
        lag_timeout: float = 5.0,
        max_delay: float = 1.0,
    ) -> None:
        if maxlen < 1 or outbox < 1 or batch < 1 or block <= 0:
            raise ValueError("maxlen, outbox and batch must be >= 1, block > 0")
        if idempotency_ttl < 0.001:
            # Redis could not keep the keys (nor the batch key that makes retries safe).
            raise ValueError("idempotency_ttl must be at least 0.001 s")
        self.url = url
        self.namespace = namespace
        self.maxlen = maxlen
        self.outbox_size = outbox
        self.idempotency_ttl = idempotency_ttl
        self.with_ids = with_ids
        self.block = block
        self.batch = batch
        self.max_delay = max_delay
        self._socket_timeout = max(5.0, block * 4)
        if policy not in ("later", "close"):
            raise ValueError(f'policy must be "later" or "close", not {policy!r}')
        self._fan = Fanout(self._lagging)
        self._lag_timeout = None if policy == "later" else lag_timeout
        self._close_code = close_code
        # The channel and the stream entries of the batch being fanned out (see _lagging).
        self._batch_of: Tuple[str, List[Any]] = ("", [])
        self._catching_up: Set[asyncio.Task[bool]] = set()
        self._k_epoch = f"{namespace}:epoch"
        self._publisher: Any = None
        self._reader: Any = None
        self._xread_conn: Any = None
        self._publish_script: Any = None
        self._epoch_script: Any = None
        self._outbox: Deque[
            Tuple[str, str, Optional[str], Union["asyncio.Future[MessageId]", _Many]]
        ] = collections.deque()
        # This bus's batch key (see _PUBLISH): a retried batch is recognised, not stored twice.
        self._k_batch = f"{namespace}:b:{secrets.token_hex(12)}"
        self._outbox_event: Optional[asyncio.Event] = None
        self._wake: Optional[asyncio.Event] = None
        self._subscribers: Dict[str, Set[WebSocket]] = {}
        self._channels_of: Dict[WebSocket, Set[str]] = {}
        self._cursors: Dict[str, int] = {}
        self._channel_json: Dict[str, str] = {}
        self._epoch: Optional[int] = None
        self._tasks: List[asyncio.Task[None]] = []
        self._closed = False
        self._reader_up = False
        self._publisher_up = True
        self._down_since: Optional[float] = None
        self._last_error: Optional[str] = None

    # -- lifecycle -----------------------------------------------------------------------------

    def _client(self) -> Any:
        # A bounded pool that makes a request wait for a free connection: the catch-ups
        # of a reconnection storm (hundreds of subscriptions at once) share a few
        # connections instead of failing past redis-py's default of 100, which would
        # read as Redis being down.
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url,
            max_connections=_MAX_CONNECTIONS,
            timeout=self._socket_timeout,
            socket_timeout=self._socket_timeout,
            socket_connect_timeout=1.0,
            retry=Retry(NoBackoff(), 0),
            decode_responses=False,
        )
        client = aioredis.Redis.from_pool(pool)
        for command in _RAW_STREAM_COMMANDS:
            client.set_response_callback(command, _raw)
        return client

    async def start(self) -> "Bus":
        """Start the publisher and the reader (``async with`` does it; the first
        :meth:`publish` or :meth:`subscribe` too)."""
        if self._tasks or self._closed:
            return self
        self._publisher = self._client()
        self._reader = self._client()
        self._publish_script = self._publisher.register_script(_PUBLISH)
        self._epoch_script = self._reader.register_script(_EPOCH)
        self._outbox_event = asyncio.Event()
        self._wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._flush_outbox(), name="turbows.pubsub publisher"),
            loop.create_task(self._read_loop(), name="turbows.pubsub reader"),
        ]
        return self

    async def close(self) -> None:
        """Stop the reader and the publisher (publishes still in the outbox fail with
        :class:`RedisUnavailable`) and close the Redis connections."""
        self._closed = True
        tasks = [*self._tasks, *self._catching_up]
        for task in tasks:
            task.cancel()
        # The loops also end on _closed once woken: redis-py can swallow a cancellation
        # that lands in a request (the first ones to a fresh server), and a task that went
        # on would wait for ever. asyncio.wait, unlike awaiting each task, leaves this
        # task's own cancellation to its caller.
        for event in (self._wake, self._outbox_event):
            if event is not None:
                event.set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=_CLOSE_TIMEOUT)
            if pending:
                logger.warning("%d bus tasks did not stop on close", len(pending))
            for task in tasks:
                if task.done() and not task.cancelled():
                    task.exception()  # retrieved: it ended, by whatever means
        self._tasks = []
        while self._outbox:
            future = self._outbox.popleft()[3]
            if not future.done():
                future.set_exception(RedisUnavailable("the bus closed"))
        if self._xread_conn is not None:
            await self._xread_conn.disconnect()
        for client in (self._publisher, self._reader):
            if client is not None:
                await client.aclose()

    async def __aenter__(self) -> "Bus":
        return await self.start()

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    # -- health --------------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        """Whether Redis answered the reader's and the publisher's last requests."""
        return self._reader_up and self._publisher_up

    def health(self) -> Dict[str, Any]:
        """The bus's state for a health check: ``ok``, ``redis`` (``"ok"`` or
        ``"unreachable"``), ``down_for`` (seconds), ``last_error``, ``outbox`` (publishes
        waiting), ``subscribers`` and ``channels`` (of this process), ``epoch``."""
        down = self._down_since
        return {
            "ok": self.healthy,
            "redis": "ok" if self.healthy else "unreachable",
            "down_for": None if down is None else round(time.monotonic() - down, 3),
            "last_error": self._last_error,
            "outbox": len(self._outbox),
            "subscribers": len(self._channels_of),
            "channels": len(self._subscribers),
            "epoch": self._epoch,
        }

    def health_check(self, path: str = "/health") -> Any:
        """A ``process_request`` hook for :func:`turbows.asyncio.serve` that answers plain
        ``GET path`` requests with 200 and the :meth:`health` JSON while Redis is reachable,
        503 while it is not; every other request goes on to the WebSocket handshake."""
        from ..asyncio import Reject

        def process_request(request: Any) -> Any:
            if request.upgrade or urlsplit(request.path).path != path:
                return None
            body = json.dumps(self.health())
            status = 200 if self.healthy else 503
            return Reject(status, [("Content-Type", "application/json")], body)

        return process_request

    def _went_down(self, where: str, exc: BaseException) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
        message = f"{type(exc).__name__}: {exc}"
        if message != self._last_error or (where == "reader" and self._reader_up):
            logger.warning("Redis unreachable (%s): %s", where, message)
        self._last_error = message
        if where == "reader":
            self._reader_up = False
        else:
            self._publisher_up = False

    def _came_back(self, where: str) -> None:
        if where == "reader":
            self._reader_up = True
        else:
            self._publisher_up = True
        if self.healthy and self._down_since is not None:
            logger.warning(
                "Redis reachable again after %.2f s", time.monotonic() - self._down_since
            )
            self._down_since = None

    def _delay(self, attempt: int) -> float:
        base = min(self.max_delay, 0.05 * 2.0 ** min(attempt, 10))
        return base * random.uniform(0.5, 1.0)

    # -- publishing ----------------------------------------------------------------------------

    def publish_nowait(
        self, channel: str, data: str, *, key: Optional[str] = None
    ) -> "asyncio.Future[MessageId]":
        """Queue a publish; the future gets the message's id once Redis stored it.

        Publishes leave in order, one outbox per bus; while Redis is unreachable they wait
        (and are retried with their idempotency key, so a retry never duplicates a message).

        Args:
            channel: the channel.
            data: the message (text; typically a JSON document).
            key: an idempotency key: a publish whose key Redis has seen within
                ``idempotency_ttl`` is not stored again, and returns the first one's id
                (for a publisher's own retries across processes or restarts). The bus's own
                retries need none: it retries one batch at a time, which Redis recognises.

        Raises:
            OutboxFull: ``outbox`` publishes already wait.
            TypeError: ``data`` is not ``str``.
        """
        if type(data) is not str or type(channel) is not str:
            if not isinstance(data, str) or not isinstance(channel, str):
                raise TypeError("channel and data must be str")
        if self._closed:
            raise RedisUnavailable("the bus is closed")
        outbox = self._outbox
        if len(outbox) >= self.outbox_size:
            raise OutboxFull(f"{self.outbox_size} publishes wait for Redis")
        event = self._outbox_event
        if event is None:
            raise RuntimeError("the bus is not started: async with Bus(...), or await start()")
        future: asyncio.Future[MessageId] = asyncio.get_running_loop().create_future()
        outbox.append((channel, data, key, future))
        event.set()
        return future

    async def publish_many(self, channel: str, messages: Sequence[str]) -> List[MessageId]:
        """Publish ``messages`` on ``channel``, in order, and return their ids.

        The same as a :meth:`publish_nowait` per message (the same outbox, order and
        retries, no idempotency keys), with one future for them all: what a burst costs per
        message is then the bus's work alone.

        Raises:
            OutboxFull: the outbox cannot take them all (nothing was queued).
            TypeError: a message is not ``str`` (nothing was queued).
            redis.exceptions.ResponseError: Redis refused a message (the first such error;
                the messages before it may have been stored).
        """
        if not self._tasks:
            await self.start()
        if not isinstance(channel, str) or not all(isinstance(m, str) for m in messages):
            raise TypeError("channel and messages must be str")
        if self._closed:
            raise RedisUnavailable("the bus is closed")
        if len(self._outbox) + len(messages) > self.outbox_size:
            raise OutboxFull(
                f"{len(messages)} publishes do not fit in the outbox "
                f"({len(self._outbox)} of {self.outbox_size} wait for Redis)"
            )
        if not messages:
            return []
        future: asyncio.Future[List[MessageId]] = asyncio.get_running_loop().create_future()
        group = _Many(future, len(messages))
        self._outbox.extend([(channel, data, None, group) for data in messages])
        if self._outbox_event is not None:
            self._outbox_event.set()
        return await future

    async def publish(self, channel: str, data: str, *, key: Optional[str] = None) -> MessageId:
        """Publish ``data`` on ``channel`` and return its id (see :meth:`publish_nowait`).

        Raises:
            OutboxFull: the outbox is full (Redis unreachable for long).
        """
        if not self._tasks:
            await self.start()
        return await self.publish_nowait(channel, data, key=key)

    @property
    def outbox(self) -> int:
        """Publishes waiting to be stored."""
        return len(self._outbox)

    async def _flush_outbox(self) -> None:
        outbox = self._outbox
        event = self._outbox_event
        assert event is not None
        attempt = 0
        ttl = str(int(self.idempotency_ttl * 1000))
        maxlen = str(self.maxlen)
        number = 0
        # The batch being stored: its size and the script's keys and arguments, kept as they
        # are until Redis answered, so that a retry is the same batch under the same number.
        batch: Optional[Tuple[int, List[str], List[Any]]] = None
        while not self._closed:
            if batch is None:
                if not outbox:
                    event.clear()
                    await event.wait()
                    continue
                number += 1
                batch = self._publish_batch(number, maxlen, ttl)
            count, keys, args = batch
            try:
                results = await self._publish_script(keys=keys, args=args)
            except _DOWN as exc:
                self._went_down("publisher", exc)
                await asyncio.sleep(self._delay(attempt))
                attempt += 1
                continue
            except ResponseError as exc:
                # The script failed as a whole (its commands' own errors come back per
                # message): fail the first message, and send the others again as a new batch
                # (the script stopped before storing anything, or their keys tell).
                logger.error("publish failed: %s", exc)
                batch = None
                _, _, _, future = outbox.popleft()
                if not future.done():
                    future.set_exception(exc)
                continue
            batch = None
            attempt = 0
            self._came_back("publisher")
            if results[0] == b"R":  # a retry of a batch Redis had stored
                results = json.loads(results[1])
            epoch = int(results[0])
            for i in range(1, count + 1):
                _, _, _, future = outbox.popleft()
                if future.done():
                    continue
                result = results[i]
                if type(result) is int:
                    future.set_result(MessageId(epoch, result))
                else:
                    if isinstance(result, bytes):
                        result = result.decode("utf-8", "replace")
                    if result[:1] == "!":
                        future.set_exception(ResponseError(result[1:]))
                    else:
                        future.set_result(MessageId.parse(result))

    def _publish_batch(self, number: int, maxlen: str, ttl: str) -> Tuple[int, List[str], List[Any]]:
        """The script's keys and arguments for the first publishes of the outbox (at most
        :data:`PUBLISH_BATCH`): see :data:`_PUBLISH`."""
        outbox = self._outbox
        count = min(len(outbox), PUBLISH_BATCH)
        keys = [self._k_epoch, self._k_batch]
        layout: List[str] = []
        data: List[str] = []
        where: Dict[str, str] = {}  # channel: "c,0;"
        known: Dict[str, str] = {}  # idempotency key: its index in KEYS
        for i in range(count):
            channel, text, key, _ = outbox[i]
            ref = where.get(channel)
            if ref is None:
                ref = where[channel] = f"{len(keys) + 1},0;"  # Lua counts from 1
                keys += (self._seq_key(channel), self._stream(channel))
            if key is not None:
                u = known.get(key)  # the same key twice in a batch: one KEYS entry
                if u is None:
                    keys.append(self._key(key))
                    u = known[key] = str(len(keys))
                ref = f"{ref.partition(',')[0]},{u};"
            layout.append(ref)
            data.append(text)
        return count, keys, [maxlen, ttl, _candidate_epoch(), number, "".join(layout), *data]

    def _stream(self, channel: str) -> str:
        return f"{self.namespace}:s:{channel}"

    def _key(self, key: str) -> str:
        return f"{self.namespace}:k:{key}"

    def _seq_key(self, channel: str) -> str:
        return f"{self.namespace}:n:{channel}"

    # -- subscribing ---------------------------------------------------------------------------

    async def subscribe(
        self,
        ws: WebSocket,
        channels: Union[str, Sequence[str]],
        since: Union[str, MessageId, Dict[str, MessageId], None] = None,
    ) -> bool:
        """Deliver ``channels`` to ``ws`` from now on, or from after ``since``.

        ``since`` is the last id received: for one channel an id (``"E-S"``), for several a
        ``{channel: id}`` mapping or the string ``"chan:E-S,chan2:E-S"`` (a channel left out
        starts live). It defaults to the ``since`` query parameter of the request, else its
        ``Last-Event-ID`` header (a first-message protocol passes it explicitly). The history
        after ``since`` is written first, at the connection's pace (a page at a time, waiting
        for its write buffer to drain), then live messages follow with no gap and no
        duplicate. A ``since`` that cannot be honoured closes the connection with
        :data:`RESET`. While Redis is unreachable this waits (retrying with backoff).

        Returns:
            True once live delivery started; False if the connection was reset or closed.
        """
        if isinstance(channels, str):
            channels = (channels,)
        channels = tuple(dict.fromkeys(channels))
        if since is None:
            since = _since_of(ws)
        start: Dict[str, MessageId] = {}
        if since is not None:
            try:
                start = _parse_since(since, channels)
            except ValueError as exc:
                self._reset(ws, str(exc))
                return False
        if not self._tasks:
            await self.start()
        return await self._resubscribe(ws, channels, start)

    async def _catch_up(
        self, ws: WebSocket, channels: Tuple[str, ...], since: Dict[str, MessageId]
    ) -> bool:
        client = self._publisher
        epoch_raw, *lasts = await self._epoch_script(
            keys=[self._k_epoch, *(self._seq_key(c) for c in channels)],
            args=[_candidate_epoch()],
            client=client,
        )
        epoch = int(epoch_raw)
        if self._epoch is None:
            self._epoch = epoch
        pos: Dict[str, Optional[int]] = dict.fromkeys(channels)
        for channel, last in zip(channels, lasts):
            start = since.get(channel)
            if start is None:
                continue
            if start.epoch != epoch:
                self._reset(ws, "the message history was lost (epoch changed)")
                return False
            if start.seq > int(last):
                self._reset(ws, "unknown resume id")
                return False
            pos[channel] = start.seq
        while True:
            for channel in channels:
                if channel not in self._cursors:
                    seq = await self._last_seq(channel, client)
                    self._cursors.setdefault(channel, seq)
            for channel in channels:
                at = pos[channel]
                upto = self._cursors.get(channel)
                if at is None or upto is None or at >= upto:
                    continue
                if await self._trimmed_after(channel, at, client):
                    self._reset(ws, "the history was trimmed")
                    return False
                pos[channel] = await self._replay(ws, channel, at, upto, client)
            if ws.state is not State.OPEN:
                return False
            # From here to the end, nothing awaits: the reader cannot move a cursor between
            # this check and the connection joining the live set.
            if self._epoch != epoch:
                self._reset(ws, "the message history was lost (epoch changed)")
                return False
            cursors = self._cursors
            if all(
                channel in cursors and (pos[channel] is None or pos[channel] == cursors[channel])
                for channel in channels
            ):
                mine = self._channels_of.setdefault(ws, set())
                for channel in channels:
                    mine.add(channel)
                    self._subscribers.setdefault(channel, set()).add(ws)
                assert self._wake is not None
                self._wake.set()
                return True

    async def _replay(self, ws: WebSocket, channel: str, after: int, upto: int, client: Any) -> int:
        """Write the channel's entries in ``(after, upto]`` to ``ws`` at its pace: each time
        what fits under its write limit (plus one message), then wait for it to drain.
        Returns the last sequence number written."""
        stream = self._stream(channel)
        high = ws._options.write_high
        while after < upto and ws.state is State.OPEN:
            while ws.writing_paused and ws.state is State.OPEN:
                try:
                    await asyncio.wait_for(ws._drain(), self._lag_timeout)
                except WebSocketClosed:
                    return after
                except asyncio.TimeoutError:
                    self._slow(ws)
                    return after
            transport = ws._transport
            if transport is None or ws.state is not State.OPEN:
                return after
            room = high - transport.get_write_buffer_size()
            if room <= 0:
                await asyncio.sleep(0.005)
                continue
            page = await client.xrange(stream, min=f"({after}-0", max=f"{upto}-0", count=256)
            if not page:
                return upto
            if _seq_of(page[0][0]) != after + 1:  # trimmed while this connection lagged
                self._reset(ws, "the history was trimmed")
                return after
            batch = self._batch(channel, page)
            fit = max(1, batch.cut(room))
            try:
                ws._conn.send_frames(batch.head(fit))
            except InvalidStateError:
                return after
            _push(ws)
            after = _seq_of(page[fit - 1][0])
        return after

    def _lagging(self, ws: WebSocket, delivered: int) -> None:
        """The fan-out's policy for a connection that took only ``delivered`` messages of
        the batch: it leaves the channel's live set and catches up from Redis."""
        channel, entries = self._batch_of
        if delivered:
            position = _seq_of(entries[delivered - 1][0])
        else:
            position = _seq_of(entries[0][0]) - 1
        self.unsubscribe(ws, (channel,))
        assert self._epoch is not None
        since = {channel: MessageId(self._epoch, position)}
        task = asyncio.get_running_loop().create_task(self._resubscribe(ws, (channel,), since))
        self._catching_up.add(task)
        task.add_done_callback(self._catching_up.discard)

    async def _resubscribe(
        self, ws: WebSocket, channels: Tuple[str, ...], since: Dict[str, MessageId]
    ) -> bool:
        attempt = 0
        while ws.state is State.OPEN and not self._closed:
            try:
                return await self._catch_up(ws, channels, since)
            except _DOWN as exc:
                self._went_down("subscriber", exc)
                await asyncio.sleep(self._delay(attempt))
                attempt += 1
        return False

    def unsubscribe(self, ws: WebSocket, channels: Optional[Iterable[str]] = None) -> None:
        """Stop delivering ``channels`` (default: all) to ``ws``."""
        mine = self._channels_of.get(ws)
        if not mine:
            return
        for channel in list(mine if channels is None else channels):
            mine.discard(channel)
            members = self._subscribers.get(channel)
            if members is not None:
                members.discard(ws)
                if not members:
                    del self._subscribers[channel]
                    self._cursors.pop(channel, None)
        if not mine:
            del self._channels_of[ws]

    # -- the reader ----------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        attempt = 0
        fresh = True  # (re)connected: check the epoch and the trims first
        assert self._wake is not None
        while not self._closed:
            try:
                if fresh:
                    await self._check_epoch()
                    fresh = False
                    attempt = 0
                    self._came_back("reader")
                if not self._subscribers:
                    if not self._closed:  # (checked since the last await)
                        self._wake.clear()
                        await self._wake.wait()
                    continue
                await self._read_once()
                self._came_back("reader")
            except _DOWN as exc:
                self._went_down("reader", exc)
                fresh = True
                await asyncio.sleep(self._delay(attempt))
                attempt += 1

    async def _check_epoch(self) -> None:
        """After (re)connecting: if Redis lost its data (new epoch), rewound a followed
        channel (its sequence is behind this process: a write acknowledged then lost), or
        trimmed one past where this process is, reset the subscribers concerned."""
        followed = list(self._subscribers)
        epoch_raw, *counters = await self._epoch_script(
            keys=[self._k_epoch, *(self._seq_key(c) for c in followed)],
            args=[_candidate_epoch()],
        )
        epoch = int(epoch_raw)
        if self._epoch is not None and epoch != self._epoch:
            logger.warning(
                "Redis lost its data (epoch %s -> %s): resetting %d subscribers",
                self._epoch,
                epoch,
                len(self._channels_of),
            )
            for ws in list(self._channels_of):
                self._reset(ws, "the message history was lost")
            self._cursors.clear()
        self._epoch = epoch
        for channel, counter in zip(followed, counters):
            cursor = self._cursors.get(channel)
            if cursor is None:
                continue
            if int(counter) < cursor:
                reason = "the message history was rewound"
            elif await self._trimmed_after(channel, cursor, self._reader):
                reason = "the history was trimmed"
            else:
                continue
            logger.warning("channel %r: %s: resetting its subscribers", channel, reason)
            for ws in list(self._subscribers.get(channel, ())):
                self._reset(ws, reason)
            self._cursors.pop(channel, None)  # its subscribers are gone with it

    async def _trimmed_after(self, channel: str, seq: int, client: Any) -> bool:
        """Whether entries after ``seq`` were trimmed from the channel: its sequence is
        contiguous, so its first entry is ``seq + 1`` or earlier unless they were."""
        first = await client.xrange(self._stream(channel), count=1)
        return bool(first) and _seq_of(first[0][0]) > seq + 1

    async def _last_seq(self, channel: str, client: Any) -> int:
        last = await client.xrevrange(self._stream(channel), count=1)
        return _seq_of(last[0][0]) if last else 0

    async def _read_once(self) -> None:
        streams = {self._stream(c): f"{self._cursors[c]}-0" for c in self._subscribers}
        reply = await self._xread(streams)
        if not reply:
            return
        prefix = len(self.namespace) + 3
        for stream, entries in reply.items() if type(reply) is dict else reply:
            if not entries:
                continue
            channel = (stream.decode() if isinstance(stream, bytes) else stream)[prefix:]
            members = self._subscribers.get(channel)
            cursor = self._cursors.get(channel)
            if cursor is not None and _seq_of(entries[0][0]) != cursor + 1:
                # Trimmed past this reader while it could not read: no silent gap.
                for ws in list(members or ()):
                    self._reset(ws, "the history was trimmed")
                self._cursors.pop(channel, None)  # its subscribers are gone with it
                continue
            if cursor is not None:
                self._cursors[channel] = _seq_of(entries[-1][0])
            if not members:
                continue
            batch = self._batch(channel, entries)
            self._batch_of = (channel, entries)
            result = self._fan.send(members, batch)
            self._batch_of = ("", [])  # _lagging runs within send: the reply is not kept
            for ws in result.missed:
                self._forget(ws)
            for ws in result.slow:
                if ws.state is not State.OPEN:
                    self._forget(ws)

    async def _xread(self, streams: Dict[str, str]) -> Any:
        """One ``XREAD BLOCK`` on the reader's own connection; the reply as the parser gives
        it: ``{stream: entries}`` (RESP3) or ``[[stream, entries], ...]`` (RESP2).

        A connection of its own rather than a command through the client: the reader sends
        one request at a time, and the client's path (pool, retry, the reply callback that
        builds a tuple and a dict per entry) cost it about as much CPU as the rest of its
        work together (``python -m turbows.bench --only pubsub-ingest``). From Python 3.11,
        one ``asyncio.timeout`` bounds the request and its reply, instead of redis-py's
        timeouts, whose ``wait_for`` runs each send as a task of its own."""
        conn = self._xread_conn
        if conn is None:
            pool = self._reader.connection_pool
            if _timeout is None:
                conn = pool.make_connection()
            else:
                conn = pool.connection_class(**{**pool.connection_kwargs, "socket_timeout": None})
            self._xread_conn = conn
        command = conn.pack_command(
            "XREAD", "COUNT", self.batch, "BLOCK", max(1, int(self.block * 1000)),
            "STREAMS", *streams, *streams.values(),
        )  # fmt: skip
        try:
            if _timeout is None:
                return await _request(conn, command)
            async with _timeout(self._socket_timeout):
                return await _request(conn, command)
        except BaseException:
            # Whatever happened (Redis gone, a timeout, the task cancelled), the reply may
            # still come: the next XREAD starts on a new connection.
            await conn.disconnect(nowait=True)
            raise

    def _batch(self, channel: str, entries: List[Any]) -> Batch:
        """The deliveries of a channel's stream entries ``[[id, [b"d", data]], ...]``,
        framed in one codec call: the data as they are (text, UTF-8, validated), or each in
        its envelope."""
        try:
            data = [fields[1] for _, fields in entries if fields[0] == b"d"]
        except IndexError:
            data = []
        if len(data) != len(entries):
            data = [_data(fields) for _, fields in entries]
        if not self.with_ids:
            return Batch(data, text=True)
        channel_json = self._channel_json.get(channel)
        if channel_json is None:
            channel_json = self._channel_json[channel] = json.dumps(channel)
        assert self._epoch is not None
        seqs = [entry[0].partition(b"-")[0] for entry in entries]
        return Batch(envelopes(self._epoch, channel_json, seqs, data), text=True)

    def _forget(self, ws: WebSocket) -> None:
        self.unsubscribe(ws)

    def _reset(self, ws: WebSocket, reason: str) -> None:
        """Close ``ws`` with :data:`RESET` now (its close frame goes after what it was sent)."""
        logger.info("reset %s: %s", ws.remote_address, reason)
        self._close(ws, RESET, reason)

    def _slow(self, ws: WebSocket) -> None:
        logger.info("closing slow consumer %s", ws.remote_address)
        self._close(ws, self._close_code, "slow consumer")

    def _close(self, ws: WebSocket, code: int, reason: str) -> None:
        self._forget(ws)
        conn = ws._conn
        if conn.state is not State.OPEN:
            return
        try:
            conn.close(code, reason[:120], ws._time())
        except InvalidStateError:  # sending a fragmented message of its own
            ws.abort()
            return
        ws._after()


async def _request(conn: Any, command: Any) -> Any:
    """Send a packed command on a redis-py connection and read its reply."""
    await conn.send_packed_command(command, check_health=False)
    return await conn.read_response()


def _since_of(ws: WebSocket) -> Optional[str]:
    """``since`` from the request: the query parameter, else the ``Last-Event-ID`` header."""
    request = ws.request
    if request is None:
        return None
    query = urlsplit(request.path).query
    if query:
        values = parse_qs(query).get("since")
        if values:
            return values[-1]
    for name, value in request.headers:
        if name.lower() == "last-event-id":
            return str(value)
    return None


def _parse_since(
    since: Union[str, MessageId, Dict[str, MessageId]], channels: Tuple[str, ...]
) -> Dict[str, MessageId]:
    """``{channel: id}`` from a ``since`` (see :meth:`Bus.subscribe`).

    Raises:
        ValueError: unreadable, or one bare id for several channels.
    """
    if isinstance(since, dict):
        return {c: i for c, i in since.items() if c in channels}
    if isinstance(since, MessageId):
        if len(channels) != 1:
            raise ValueError("one id for several channels: give one per channel")
        return {channels[0]: since}
    text = since.strip()
    if ":" not in text:
        if len(channels) != 1:
            raise ValueError("one id for several channels: give one per channel")
        return {channels[0]: MessageId.parse(text)}
    out: Dict[str, MessageId] = {}
    for part in text.split(","):
        channel, sep, value = part.rpartition(":")
        if not sep or not channel:
            raise ValueError(f"not channel:id: {part[:64]!r}")
        if channel in channels:
            out[channel] = MessageId.parse(value)
    return out
