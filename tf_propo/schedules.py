"""Learning-rate schedules for training."""

import keras
from keras import ops


class ConstantThenLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """The authors' schedule: `learning_rate` until `decay_start`, then linear to 0 at `total`.
    A function of the optimizer's step counter alone, so a resumed run continues it exactly."""

    def __init__(self, learning_rate, decay_start, total):
        self.learning_rate = float(learning_rate)
        self.decay_start = int(decay_start)
        self.total = int(total)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        span = float(max(self.total - self.decay_start, 1))
        fraction = ops.clip((step - self.decay_start) / span, 0.0, 1.0)
        return self.learning_rate * (1.0 - fraction)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "decay_start": self.decay_start,
                "total": self.total}
