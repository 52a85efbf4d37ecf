"""The synthesis methods by name and the output shapes each makes, without TensorFlow: the
apps check a size before they import it, and the library raises the same rule.

Quilting and Gatys make any shape. The pseudo optimizers need sides in multiples of 16 (pool4
and their ×2 merges), and so does a tileable OT texture (its decoders invert whole poolings;
an ordinary one is made on the next multiple of 16 and cropped). Every method can tile.
"""

METHODS = ("gatys", "po", "adapo", "propo", "ot", "quilt")
PSEUDO_OPTIMIZERS = ("po", "adapo", "propo")
MULTIPLE = 16


def sides(size):
    """(height, width) of an output size given as one side or as (height, width)."""
    return tuple(size) if isinstance(size, (tuple, list)) else (size, size)


def size_problem(method, height, width, tileable=False):
    """Why `method` cannot make a height × width texture (tileable or not), or None."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if height % MULTIPLE == 0 and width % MULTIPLE == 0:
        return None
    if method in PSEUDO_OPTIMIZERS:
        return f"{method} makes sides that are multiples of {MULTIPLE}"
    if method == "ot" and tileable:
        return f"a tileable ot texture needs sides that are multiples of {MULTIPLE}"
    return None
