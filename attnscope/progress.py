"""Progress of long CLI work on stderr, with no dependency.

    with Progress(3, quiet=args.quiet) as p:
        p.next("loading the model")      # starts a step (and completes the one before)
        ...
        p.next("writing index.html")
        ...
                                         # leaving the block completes the last step

On a terminal: one bar redrawn in place with \\r, the running step's label and its elapsed time
(ticking while a single long call, such as the first weight conversion, runs). Anywhere else (a
pipe, a CI log): one plain line per completed step, so logs stay clean. A step that fails prints
nothing: the bar is erased and the error that follows stays the one line the user reads.
"""

import shutil
import sys
import threading
import time


class Progress:
    def __init__(self, total: int, *, quiet: bool = False, stream=None, tty: bool | None = None,
                 prefix: str = "attnscope", width: int = 20, tick: float = 0.2):
        self.total, self.quiet, self.prefix, self.width, self.tick = max(total, 1), quiet, prefix, width, tick
        self.stream = sys.stderr if stream is None else stream
        self.tty = (hasattr(self.stream, "isatty") and self.stream.isatty()) if tty is None else tty
        encoding = (getattr(self.stream, "encoding", None) or "").lower().replace("-", "")
        self.fill, self.empty = ("█", "░") if encoding == "utf8" else ("#", "-")
        self.done = 0
        self.label: str | None = None
        self.started = self.began = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._drawn = False

    # --- steps ----------------------------------------------------------------------------------------
    def next(self, label: str) -> None:
        """Complete the running step (if any) and start `label`."""
        self._complete()
        with self._lock:
            self.label, self.started = label, time.monotonic()
        self._draw()
        if self.tty and not self.quiet and self._ticker is None:
            self._ticker = threading.Thread(target=self._run_ticker, name="attnscope-progress", daemon=True)
            self._ticker.start()

    def _complete(self) -> None:
        with self._lock:
            if self.label is None:
                return
            label, seconds = self.label, time.monotonic() - self.started
            self.done, self.label = min(self.done + 1, self.total), None
        if not self.quiet and not self.tty:
            self._write(f"{self.prefix}: [{self.done:>{len(str(self.total))}}/{self.total}] {label} ({seconds:.1f} s)\n")

    def close(self, ok: bool = True) -> None:
        """Complete the last step; on a terminal, leave the full bar (ok) or erase it (a failure follows)."""
        if ok:
            self._complete()
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        if self.tty and not self.quiet and self._drawn:
            if ok:
                self._draw(final=True)
                self._write("\n")
            else:
                self._write("\r\x1b[K")
            self._drawn = False

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(ok=exc_type is None)

    # --- drawing (terminal only) ------------------------------------------------------------------------
    def line(self, final: bool = False) -> str:
        with self._lock:
            done, label = self.done, self.label
            seconds = time.monotonic() - (self.began if final else self.started)
        filled = round(self.width * done / self.total)
        bar = self.fill * filled + self.empty * (self.width - filled)
        text = f"done in {seconds:.1f} s" if final else f"{label or ''}  {seconds:.1f} s"
        line = f"{self.prefix} {bar} {done:>{len(str(self.total))}}/{self.total}  {text}"
        columns = shutil.get_terminal_size((80, 24)).columns
        return line if len(line) < columns else line[:max(columns - 2, 10)] + "…"  # a wrapped line cannot be redrawn

    def _draw(self, final: bool = False) -> None:
        if self.tty and not self.quiet:
            self._write("\r" + self.line(final) + "\x1b[K")
            self._drawn = True

    def _run_ticker(self) -> None:
        while not self._stop.wait(self.tick):
            self._draw()

    def _write(self, s: str) -> None:
        with self._lock:
            self.stream.write(s)
            self.stream.flush()
