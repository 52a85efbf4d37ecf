"""Whether a run's images fit in memory, checked before any work.

Every result is scored by a VGG19 pass over the whole batch, and the target's statistics by
one over the target: measured peak memory of a synthesis run, 11.8 GB at 2048² (2026-12-02,
quilt, 2-core CPU), about 2.8 KB per pixel; 4096² ran out of 24 GB.
"""

from tf_propo.errors import UsageError

BYTES_PER_PIXEL = 3000
BASE_BYTES = 1.5e9


def available():
    """Bytes of memory available to a new allocation (Linux MemAvailable), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_fits(pixels, what, advice):
    """UsageError naming `what` when `pixels` of images need more memory than is free."""
    needed, free = BASE_BYTES + BYTES_PER_PIXEL * pixels, available()
    if free is not None and needed > free:
        raise UsageError(f"{what}: {pixels / 1e6:.1f} Mpx of images need about "
                         f"{needed / 1e9:.0f} GB, more than the {free / 1e9:.0f} GB free "
                         f"here; {advice}")
