"""cryptofeed's own replay of a capture, as a whole process: ``bench_replay_process.py``
times this script next to ``spiceflow replay`` on the same session.

Runs INSIDE the throwaway virtualenv ``benchmarks/.venv-cryptofeed``:

    cd SESSION_DIR && .venv-cryptofeed/bin/python cryptofeed_playback.py VENUE PREFIX

``cryptofeed.raw_data_collection.playback`` is cryptofeed's reader of this capture format
(its ``sample_data`` sessions are the ``shared/recorded`` ones): it reads the files, answers
the feed's REST calls from them (reference data from ``PREFIX.0``, depth snapshots from
``PREFIX.http.*``) and hands every WebSocket frame of ``PREFIX.ws.*`` to the feed's
``message_handler`` (JSON decode with Decimal, sequence checks, its ``order_book`` C
extension). With no callbacks given, its own callback only counts the updates, which
this script prints (one JSON object) so the caller can check every frame was applied.
Relative file names: playback tells the file kinds apart by ``ws`` / ``http`` anywhere
in the path.
"""

from __future__ import annotations

import glob
import json
import sys


def main() -> None:
    venue, prefix = sys.argv[1], sys.argv[2]
    from cryptofeed.raw_data_collection import playback

    files = [f"./{name}" for name in sorted(glob.glob(glob.escape(prefix) + ".*"))]
    # cryptofeed counts Deribit's raw book as an authenticated channel: dummy keys (no
    # connection is ever made)
    config = {"deribit": {"key_id": "bench", "key_secret": "bench"}} if venue == "deribit" else None
    stats = playback(venue.upper(), files, config=config)
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
