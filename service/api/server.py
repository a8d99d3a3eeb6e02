"""Serving the API with uvicorn, stopped by SIGTERM or SIGINT the way the other processes are."""

from types import FrameType

import uvicorn
from fastapi import FastAPI


class _DrainedServer(uvicorn.Server):
    """uvicorn re-raises the signal that stopped it once it has drained, so a clean stop would end the
    process as if killed by SIGTERM (exit -15). Like the other processes, `orders api` exits 0 after
    draining; a second SIGINT still forces the exit, as uvicorn does."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def serve(app: FastAPI, host: str, port: int) -> None:
    """Serve `app` until SIGTERM or SIGINT, then let the requests in progress finish and return."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        # The app logs each request itself (`service.api.access_log`): uvicorn's access log has query strings.
        log_config=None,
        access_log=False,
    )
    _DrainedServer(config).run()
