"""tf_propo.progress: the bar on stderr that every long command shows."""

import io

from tf_propo.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_gets_a_line_per_tenth_and_the_last():
    stream = io.StringIO()
    bar = Progress(40, "work", stream=stream)
    for _ in range(40):
        bar.update(loss=0.5)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 11  # 0/10 … 10/10 of the way, each once
    assert lines[0].startswith("work [") and " 1/40 " in lines[0]
    assert lines[-1].startswith("work [" + "#" * 28 + "] 40/40 ")
    assert lines[-1].endswith("loss=0.5")


def test_a_terminal_redraws_one_line_and_close_ends_it():
    stream = _Terminal()
    bar = Progress(4, "polish 64x64", stream=stream)
    bar.update()
    bar.update()
    assert "\n" not in stream.getvalue() and stream.getvalue().count("\r") == 2
    bar.close()  # stopped short of 4 steps: the line still ends
    assert stream.getvalue().endswith("\n")
    done = _Terminal()
    bar = Progress(1, "x", stream=done)
    bar.update()
    bar.close()  # a finished bar has ended its line already
    assert done.getvalue().count("\n") == 1
    quiet = io.StringIO()
    bar = Progress(3, "x", stream=quiet)
    bar.update()
    bar.close()  # a log's lines end as written: close adds nothing
    assert quiet.getvalue().count("\n") == 1
