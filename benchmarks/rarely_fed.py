"""The CPU time a rarely fed consumer spends per item.

A thread in a subinterpreter blocks in ``Queue.get()``; this thread puts one
item every 1-5 ms (uniformly drawn, fixed seed). The consumer reports its own
CPU time (``time.thread_time()``) divided by the items it got: the cost of
one blocking wait that sleeps and is woken. A blocked thread may spin before
it sleeps (docs/design.md, "Queues and channels"), but only while its waits
end soon; this probe shows that a consumer fed rarely pays nothing for it.

Usage: ``python -m benchmarks.rarely_fed [--gap-ms LO HI] [-n ITEMS]``.
"""

import argparse
import random
import threading
import time

import interpreters_aio

CONSUMER = """
import time
got = 0
start = time.thread_time()
while (item := inbox.get()) is not None:
    got += 1
outbox.put((got, time.thread_time() - start))
"""

#: ``time.sleep`` overshoots by tens of microseconds: sleep to this much
#: before the due time, then spin the rest, so the gaps are what was drawn.
SLEEP_SLACK = 0.0002


def consumer_cpu_per_item(low: float, high: float, items: int) -> float:
    """Feeds `items` items, one every `low`-`high` seconds; returns the
    consumer's CPU seconds per item."""
    inbox, outbox = interpreters_aio.create_queue(), interpreters_aio.create_queue()
    interp = interpreters_aio.create()
    try:
        interp.prepare_main(inbox=inbox, outbox=outbox)
        consumer = threading.Thread(target=interp.exec, args=(CONSUMER,))
        consumer.start()
        rng = random.Random(1)
        for _ in range(items):
            due = time.perf_counter() + rng.uniform(low, high)
            if due - time.perf_counter() > SLEEP_SLACK:
                time.sleep(due - time.perf_counter() - SLEEP_SLACK)
            while time.perf_counter() < due:
                pass
            inbox.put(1)
        inbox.put(None)
        got, cpu = outbox.get()
        consumer.join()
    finally:
        interp.close()
    if got != items:
        raise RuntimeError(f"the consumer got {got} items of {items}")
    return cpu / items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gap-ms", nargs=2, type=float, default=(1.0, 5.0), metavar=("LO", "HI"))
    parser.add_argument("-n", type=int, default=800, help="items to feed (default: 800)")
    args = parser.parse_args()
    low, high = (ms / 1000 for ms in args.gap_ms)
    per_item = consumer_cpu_per_item(low, high, args.n)
    print(
        f"one item every {args.gap_ms[0]:g}-{args.gap_ms[1]:g} ms, {args.n} items: "
        f"consumer CPU time {per_item * 1e6:.2f} µs per item"
    )


if __name__ == "__main__":
    main()
