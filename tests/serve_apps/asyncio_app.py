"""Plain asyncio test app for tests/test_serve.py: a TCP line echo, tagged with the worker."""

import asyncio
import time

HOLD = b"hold\n"
"""A line that makes the worker reply, then stall its event loop for HOLD_SECONDS,
so that the test can tell the next connection must go to another worker."""
HOLD_SECONDS = 1.0


async def main(ctx):
    async def echo(reader, writer):
        line = await reader.readline()
        writer.write(f"{ctx.index}:".encode() + line)
        await writer.drain()
        writer.close()
        if line == HOLD:
            time.sleep(HOLD_SECONDS)  # blocks this worker's loop on purpose

    servers = [await asyncio.start_server(echo, sock=sock) for sock in ctx.sockets]
    print(f"asyncio worker {ctx.index} of {ctx.workers} up")
    ctx.send(("up", ctx.index))
    await ctx.stopping.wait()
    for server in servers:
        server.close()
        await server.wait_closed()
    print(f"asyncio worker {ctx.index} done")


async def echo_inbox(ctx):
    ctx.send(("up", ctx.index))
    while True:
        message = await ctx.inbox.get()
        ctx.send(("echo", ctx.index, message))
        if message == "bye":
            return


async def crash(ctx):
    raise RuntimeError("crashes at every start")
