"""A small progress bar with ETA on stderr (stdout is reserved for the JSON result line)."""

import sys
import time


def _format_seconds(seconds):
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    """Progress over `total` steps. On a terminal it redraws one line; in a log (CI, a pipe) it
    prints a line at every tenth of the way, so logs stay short."""

    def __init__(self, total, description="", stream=None, width=28):
        self.total = max(int(total), 1)
        self.description = description
        self.stream = stream or sys.stderr
        self.width = width
        self.count = 0
        self.start = time.perf_counter()
        self._interactive = getattr(self.stream, "isatty", lambda: False)()
        self._last_decile = -1

    def update(self, steps=1, **metrics):
        self.count = min(self.count + steps, self.total)
        elapsed = time.perf_counter() - self.start
        eta = elapsed / self.count * (self.total - self.count) if self.count else 0.0
        filled = int(self.width * self.count / self.total)
        bar = "#" * filled + "." * (self.width - filled)
        extra = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in metrics.items())
        line = (f"{self.description} [{bar}] {self.count}/{self.total} "
                f"{_format_seconds(elapsed)}<{_format_seconds(eta)} {extra}").rstrip()
        if self._interactive:
            self.stream.write("\r" + line + "\033[K")
            if self.count == self.total:
                self.stream.write("\n")
        else:
            decile = 10 * self.count // self.total
            if decile != self._last_decile:
                self._last_decile = decile
                self.stream.write(line + "\n")
        self.stream.flush()

    def close(self):
        """End the bar's line on a terminal when the work stopped short of `total` (an
        optimiser that found no descent), so the next output starts on a line of its own."""
        if self._interactive and self.count < self.total:
            self.stream.write("\n")
            self.stream.flush()
