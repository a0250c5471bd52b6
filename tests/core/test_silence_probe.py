"""SilenceProbe: one probe at a time, none while busy, quiet markets back off up to 16 timeouts."""

from __future__ import annotations

import asyncio

from moonship_core import SilenceProbe
from moonship_core.testing import until
from moonship_core.venues.websocket import MAX_PROBE_BACKOFF


def test_one_probe_at_a_time_and_none_while_busy() -> None:
    async def main() -> None:
        release = asyncio.Event()
        probes: list[float] = []
        busy = False

        async def probe() -> None:
            probes.append(asyncio.get_running_loop().time())
            await release.wait()

        silence = SilenceProbe(0.05, lambda seconds: seconds >= 0.05, probe, busy=lambda: busy)
        silence.arm()
        await until(lambda: probes, what="first probe")
        silence.touch()  # an update arrives while the probe runs, then the feed is silent again
        await asyncio.sleep(0.3)  # six more timeouts while the probe is still running
        assert len(probes) == 1 and silence.silences == 1
        busy = True
        release.set()
        await asyncio.sleep(0.3)  # silences while busy only re-arm the watch
        assert len(probes) == 1
        busy = False
        await until(lambda: len(probes) == 2, what="probe once no longer busy")
        assert silence.silences == 2
        await silence.stop()

    asyncio.run(main())


def test_quiet_probes_back_off_to_the_cap_and_an_update_restores_the_timeout() -> None:
    async def main() -> None:
        silence: SilenceProbe

        async def probe() -> None:
            silence.quiet()

        silence = SilenceProbe(0.01, lambda _: False, probe)
        silence.arm()
        await until(lambda: silence.quiet_probes >= 6, timeout=5, what="quiet probes")
        assert silence.watch.timeout == 0.01 * MAX_PROBE_BACKOFF
        assert silence.silences == 0  # the market was never active
        silence.touch()
        assert silence.watch.timeout == 0.01
        await silence.stop()

    asyncio.run(main())


def test_a_probe_that_cancels_its_silence_still_finishes() -> None:
    async def main() -> None:
        finished = asyncio.Event()
        silence: SilenceProbe

        async def probe() -> None:
            silence.cancel()  # e.g. the probe reconnects and the drop cancels probing
            await asyncio.sleep(0)
            finished.set()

        silence = SilenceProbe(0.02, lambda _: True, probe)
        silence.arm()
        await asyncio.wait_for(finished.wait(), 2)
        await asyncio.sleep(0.1)  # cancelled: the watch no longer fires
        assert silence.silences == 1
        await silence.stop()

    asyncio.run(main())
