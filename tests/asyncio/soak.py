"""Soak test of the asyncio server (not collected by pytest; about 1 minute per run):

    PYTHONPATH=src python tests/asyncio/soak.py fast|loop asyncio|uvloop 200 2000 60

Soak: N connections x M messages of random sizes (0..200 KiB, mostly small), random slow
readers, random client aborts, against one turbows server process (TRANSPORT loop|fast, LOOP
asyncio|uvloop). Every echo is compared with what was sent; at the end the server reports its
connections, tasks, fds, pollers and RSS. Bounded: DEADLINE seconds for the traffic."""

import asyncio
import gc
import json
import os
import random
import subprocess
import sys
import time


def fds():
    return len(os.listdir("/proc/self/fd"))  # the server should end at +1 (its listener)


def rss():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def server_main(transport):
    import logging

    logging.basicConfig(level=logging.CRITICAL)
    import turbows.asyncio as fa

    async def handler(ws):
        if ws.request.path == "/cb":
            ws.on_message = ws.send_nowait
            await ws.wait_closed()
        else:
            async for m in ws:
                await ws.send(m)

    loop = asyncio.get_running_loop()
    base_fds = fds()
    server = fa.serve(
        handler,
        "127.0.0.1",
        0,
        ping_interval=None,
        fast_transport=(transport == "fast"),
        max_message_size=1 << 20,
        close_timeout=2.0,
    )
    await server.start()
    base_rss = rss()
    print("READY", server.port, flush=True)
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or line.strip() == "quit":
            break
        for _ in range(50):  # let closing connections finish
            if not server.connections:
                break
            await asyncio.sleep(0.1)
        gc.collect()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        print(
            json.dumps(
                dict(
                    connections=len(server.connections),
                    tasks=len(tasks),
                    fds_open_minus_listen=fds() - base_fds,
                    handler_tasks=len(server._tasks),
                    rss_growth_kib=rss() - base_rss,
                )
            ),
            flush=True,
        )
    await server.shutdown()


def rand_size(r):
    x = r.random()
    if x < 0.90:
        return r.randint(0, 1024)
    if x < 0.99:
        return r.randint(1024, 16384)
    return r.randint(16384, 200 * 1024)


async def client_main(port, conns, msgs, deadline, seed):
    import turbows.asyncio as fa

    stats = dict(ok=0, bad=0, aborted=0, conns_done=0, errors=0, bytes=0)
    blob = os.urandom(256 * 1024)
    text = (bytes(range(32, 127)) * 3000).decode()
    end = time.monotonic() + deadline

    async def one(i):
        rr = random.Random(seed * 1000 + i)
        path = "/cb" if i % 2 else "/"
        slow = rr.random() < 0.2
        abort_at = rr.randint(0, msgs) if rr.random() < 0.1 else None
        window = 64 if slow else 8
        sem = asyncio.Semaphore(window)
        sent = asyncio.Queue()
        try:
            ws = await fa.connect(f"ws://127.0.0.1:{port}{path}", max_message_size=1 << 20)
        except Exception:
            stats["errors"] += 1
            return

        async def sender():
            for k in range(msgs):
                if time.monotonic() > end:
                    break
                if abort_at is not None and k == abort_at:
                    ws.abort()
                    stats["aborted"] += 1
                    await sent.put(None)
                    return "abort"
                n = rand_size(rr)
                off = rr.randint(0, 50000)
                m = text[off : off + n] if rr.random() < 0.5 else blob[off : off + n]
                await sem.acquire()
                await sent.put(m)
                await ws.send(m)
            await sent.put(None)

        async def receiver():
            while True:
                m = await sent.get()
                if m is None:
                    return
                got = await ws.recv()
                if got == m:
                    stats["ok"] += 1
                    stats["bytes"] += len(m)
                else:
                    stats["bad"] += 1
                sem.release()
                if slow and rr.random() < 0.05:
                    await asyncio.sleep(rr.random() * 0.05)

        try:
            s = asyncio.create_task(sender())
            await receiver()
            res = await s
            if res != "abort":
                await ws.close()
                stats["conns_done"] += 1
        except fa.WebSocketClosed:
            pass
        except Exception as exc:
            stats["errors"] += 1
            print("client error", i, repr(exc), file=sys.stderr)
            ws.abort()

    await asyncio.gather(*(one(i) for i in range(conns)))
    return stats


def main():
    if sys.argv[1] == "server":
        if sys.argv[3] == "uvloop":
            import uvloop

            uvloop.run(server_main(sys.argv[2]))
        else:
            asyncio.run(server_main(sys.argv[2]))
        return
    transport, loopname = sys.argv[1], sys.argv[2]
    conns, msgs, deadline = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    import resource

    resource.setrlimit(
        resource.RLIMIT_NOFILE, (4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    )
    p = subprocess.Popen(
        [sys.executable, __file__, "server", transport, loopname],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(p.stdout.readline().split()[1])
        for rnd in range(2):
            t = time.monotonic()
            stats = asyncio.run(client_main(port, conns, msgs, deadline, seed=rnd + 1))
            stats["seconds"] = round(time.monotonic() - t, 1)
            p.stdin.write("check\n")
            p.stdin.flush()
            stats["server"] = json.loads(p.stdout.readline())
            print(transport, loopname, "round", rnd, json.dumps(stats), flush=True)
        p.stdin.write("quit\n")
        p.stdin.flush()
        p.wait(timeout=30)
        print(transport, loopname, "server exit", p.returncode)
    finally:
        if p.poll() is None:
            p.kill()


main()
