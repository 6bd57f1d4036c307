"""PersonVLM: a small vision-language model that describes people in surveillance crops."""

import os

# Idle OpenMP threads must sleep, not spin: on a shared or oversubscribed CPU (a serving host
# running several workers, CI) spinning threads made inference 3-10x slower in our benchmarks.
# It has to be set before torch is first imported, hence here; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
