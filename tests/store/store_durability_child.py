"""Child process for the kill -9 durability test (tests/store/test_sqlite.py).

Opens a SqliteStore and runs concurrent writers forever: creates, and compare-and-set updates
of one counter per writer. After each acknowledged write it prints one line
`<name> <resourceVersion> <count>` and flushes, so every printed line is an acknowledged write.
The parent kills it with SIGKILL at some point and checks the lines against the reopened store.
"""

from __future__ import annotations

import asyncio
import sys

from shoal.store.sqlite import SqliteStore


async def main(path: str, writers: int) -> None:
    store = SqliteStore(path)

    async def writer(index: int) -> None:
        counter = await store.create(
            {"kind": "Pod", "metadata": {"name": f"counter-{index}"}, "spec": {"count": 0}}
        )
        print(f"counter-{index} {counter['metadata']['resourceVersion']} 0", flush=True)
        i = 0
        while True:
            i += 1
            name = f"pod-{index}-{i}"
            created = await store.create({"kind": "Pod", "metadata": {"name": name}, "spec": {}})
            print(f"{name} {created['metadata']['resourceVersion']} 0", flush=True)
            counter["spec"]["count"] = i
            counter = await store.update(
                counter, expected_revision=int(counter["metadata"]["resourceVersion"])
            )
            print(f"counter-{index} {counter['metadata']['resourceVersion']} {i}", flush=True)

    await asyncio.gather(*(writer(index) for index in range(writers)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
