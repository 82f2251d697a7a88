"""The lifespan of the small test apps that need nothing at start-up or exit."""


async def run(receive, send):
    """Answers startup and shutdown, then returns."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
