"""Whether a run's images fit in memory, checked before any work.

Peak resident memory of synthesis runs, measured (2026-12-03, 2-core AVX512-BF16 CPU, 24 GB,
`/usr/bin/time -v python -m tf_propo.synthesize --size=…`): the VGG19 passes (the scoring,
the polish and refinement, Gatys' gradients) go a tile at a time past 1024 px a side
(tf_propo.tiles), so what is left per output pixel is the method's own: quilting about
0.7 KB with 8 polish steps (12.5 GB at 4096²: its images and the polish's L-BFGS state;
0.5 KB, 8.5 GB, with the default 4, 2026-12-04), the pseudo
optimizers' stage networks about 1.2 KB (6.5 GB at 2048²); OT's encoder and decoders, and
Gatys until measured, about 3 KB (12.7 GB at 2048²).
"""

from tf_propo.errors import UsageError

BYTES_PER_PIXEL = {"quilt": 800, "po": 1500, "adapo": 1500, "propo": 1500}
OTHER_BYTES_PER_PIXEL = 3000
BASE_BYTES = 1.5e9


def bytes_per_pixel(method):
    """Peak bytes per pixel of images a run of `method` holds (OTHER_BYTES_PER_PIXEL for a
    method not in BYTES_PER_PIXEL, or None: the most any method needs)."""
    return BYTES_PER_PIXEL.get(method, OTHER_BYTES_PER_PIXEL)


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


def check_fits(pixels, what, advice, method=None):
    """UsageError naming `what` when `pixels` of images of a run of `method` need more
    memory than is free."""
    needed, free = BASE_BYTES + bytes_per_pixel(method) * pixels, available()
    if free is not None and needed > free:
        raise UsageError(f"{what}: {pixels / 1e6:.1f} Mpx of images need about "
                         f"{needed / 1e9:.0f} GB, more than the {free / 1e9:.0f} GB free "
                         f"here; {advice}")
