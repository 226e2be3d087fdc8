"""cryptofeed's Binance feed as the second receiver of ``bench_live.py``.

Runs INSIDE the throwaway virtualenv ``benchmarks/.venv-cryptofeed`` (cryptofeed is never
installed into the project's environment); ``bench_live.py`` starts it as a subprocess:

    .venv-cryptofeed/bin/python cryptofeed_live.py WS_URL REST_URL ZMQ_PORT

What runs is a stock cryptofeed setup: a ``FeedHandler`` (default configuration, so
uvloop when installed, which cryptofeed's requirements pull in) with one ``Binance`` feed,
``L2_BOOK`` for BTC-USDT, and its own ZeroMQ backend ``BookZMQ`` (default options: every
book update as a JSON delta, a full-book JSON snapshot every 1,000 updates) publishing to
the benchmark's subscriber, which binds ``tcp://127.0.0.1:ZMQ_PORT`` (cryptofeed's PUB
socket connects). The only change is where the feed connects: cryptofeed takes its
addresses from the class attributes ``websocket_endpoints`` / ``rest_endpoints``
(``WebsocketEndpoint`` / ``RestEndpoint``, with the stock REST routes kept), so they are
replaced by the loopback sender's before the feed is built. Its WebSocket connection
class accepts ``wss://`` addresses only, so the feed is given ``wss://127.0.0.1:PORT``
and the ``connect`` it calls (``websockets.connect``, looked up in
``cryptofeed.connection``) is wrapped to open it as ``ws://`` (no TLS on loopback, as
for SpiceFlow). Reference data
(``/api/v3/exchangeInfo``), the depth snapshot (``/api/v3/depth``) and the combined
stream (``/stream?streams=btcusdt@depth@100ms``) then all come from the sender.

Runs until it is terminated (SIGTERM / SIGINT: cryptofeed's own shutdown).
"""

from __future__ import annotations

import asyncio
import sys


def main() -> None:
    ws_url, rest_url, zmq_port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    import cryptofeed.connection
    from cryptofeed import FeedHandler
    from cryptofeed.backends.zmq import BookZMQ
    from cryptofeed.connection import RestEndpoint, WebsocketEndpoint
    from cryptofeed.defines import L2_BOOK
    from cryptofeed.exchanges import Binance

    stock = Binance.rest_endpoints[0]
    Binance.websocket_endpoints = [WebsocketEndpoint(ws_url.replace("ws://", "wss://", 1))]
    Binance.rest_endpoints = [RestEndpoint(rest_url, routes=stock.routes)]

    tls_connect = cryptofeed.connection.connect

    def loopback_connect(uri: str, **options):
        return tls_connect(uri.replace("wss://", "ws://", 1), **options)

    cryptofeed.connection.connect = loopback_connect

    handler = FeedHandler()  # default config (written log: ./feedhandler.log, the caller's cwd)
    handler.add_feed(
        Binance(symbols=["BTC-USDT"], channels=[L2_BOOK], callbacks={L2_BOOK: BookZMQ(host="127.0.0.1", port=zmq_port)})
    )
    # FeedHandler.run() asks asyncio.get_event_loop() for the loop, which uvloop >= 0.22
    # refuses to create: the loop is made current first (under the policy FeedHandler set)
    asyncio.set_event_loop(asyncio.new_event_loop())
    handler.run()


if __name__ == "__main__":
    main()
