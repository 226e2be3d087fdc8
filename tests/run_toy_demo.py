"""Runs the toy venue's demo (simulator + full pipeline) until signalled; prints READY."""

import anyio
from runtime_helpers import settings_for, toy_registry

from spiceflow_core.logs import configure_logging
from spiceflow_core.runtime.orchestrator import Orchestrator


async def main() -> int:
    configure_logging("INFO")
    orc = Orchestrator(settings_for("toy", ["AAA", "BBB"], profiles=("demo",)), toy_registry(), ["toy"])

    async def announce() -> None:
        await orc.ready.wait()
        print("READY", flush=True)

    async with anyio.create_task_group() as tg:
        tg.start_soon(announce)
        code = await orc.run()
        tg.cancel_scope.cancel()
    return code


if __name__ == "__main__":
    raise SystemExit(anyio.run(main))
