"""Progress of long CLI work on stderr: tqdm's bar, one unit per step.

    with Progress(3, quiet=args.quiet) as p:
        p.next("loading the model")      # starts a step (and completes the one before)
        ...                              # leaving the block completes the last step

tqdm redraws the bar in place on a terminal and draws nothing anywhere else (disable=None: a pipe
or a CI log stays clean). A run that fails erases its bar: the error that follows is the one line
the user reads."""

import sys

from tqdm import tqdm


class Progress(tqdm):
    def __init__(self, total: int, *, quiet: bool = False, file=None):
        super().__init__(total=total, desc="attnscope", unit="step", file=sys.stderr if file is None else file,
                         disable=True if quiet else None, leave=True,
                         bar_format="{desc} {bar:20} {n_fmt}/{total_fmt} {elapsed}{postfix}")  # tqdm writes ", label"
        self.running = False

    def next(self, label: str) -> None:
        """Complete the running step (if any) and start `label`."""
        if self.running:
            self.update()
        self.running = True
        self.set_postfix_str(label)

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None and self.running:
            self.update()
        elif exc_type is not None:
            self.leave = False  # close() clears the line instead of leaving a half bar above the error
        return super().__exit__(exc_type, exc, tb)
